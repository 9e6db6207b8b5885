//! The pause image, made locally so a first start needs no registry: a static ELF
//! executable of a few bytes that sleeps forever (the sandbox's PID 1 holds the pod's
//! namespaces; the runtime stops it with SIGKILL), packed as a `docker save` archive
//! that `ctr images import` loads.

use serde_json::json;

/// The image name the generated containerd config uses as `sandbox_image`.
pub const PAUSE_IMAGE: &str = "rkube.local/pause:1";

/// The machine code of `loop { pause() }` for this architecture, and its ELF machine.
fn program(arch: &str) -> Option<(u16, &'static [u8])> {
    match arch {
        // mov eax, 34 (pause); syscall; jmp back
        "x86_64" => Some((0x3e, &[0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7])),
        // mov x0..x3, #0; mov x8, #73 (ppoll with no fds: sleeps until a signal); svc #0; b back
        "aarch64" => Some((
            0xb7,
            &[
                0x00, 0x00, 0x80, 0xd2, 0x01, 0x00, 0x80, 0xd2, 0x02, 0x00, 0x80, 0xd2, 0x03, 0x00,
                0x80, 0xd2, 0x28, 0x09, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4, 0xfa, 0xff, 0xff, 0x17,
            ],
        )),
        _ => None,
    }
}

/// The OCI architecture name of a Rust `target_arch`.
pub fn oci_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A static ELF executable (one PT_LOAD segment, no sections) running `loop { pause }`.
pub fn pause_elf(arch: &str) -> Option<Vec<u8>> {
    let (machine, code) = program(arch)?;
    const BASE: u64 = 0x40_0000;
    const HEADERS: u64 = 64 + 56;
    let size = HEADERS + code.len() as u64;
    let mut b = Vec::with_capacity(size as usize);
    // ELF header: 64-bit, little endian, version 1, System V ABI.
    b.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b.extend_from_slice(&machine.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&(BASE + HEADERS).to_le_bytes()); // entry
    b.extend_from_slice(&64u64.to_le_bytes()); // program headers right after this one
    b.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&64u16.to_le_bytes());
    b.extend_from_slice(&56u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&[0; 6]);
    // Program header: PT_LOAD, R+X, the whole file at BASE.
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&5u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&BASE.to_le_bytes());
    b.extend_from_slice(&BASE.to_le_bytes());
    b.extend_from_slice(&size.to_le_bytes());
    b.extend_from_slice(&size.to_le_bytes());
    b.extend_from_slice(&0x1000u64.to_le_bytes());
    b.extend_from_slice(code);
    Some(b)
}

/// A minimal ustar archive writer (regular files and directories, owned by root).
#[derive(Default)]
pub struct Tar(Vec<u8>);

impl Tar {
    fn header(&mut self, name: &str, mode: u32, size: usize, kind: u8) {
        let mut h = [0u8; 512];
        let name = name.as_bytes();
        h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
        let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
            let s = format!("{v:0width$o}", width = len - 1);
            h[at..at + len - 1].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, mode as u64);
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, size as u64);
        octal(&mut h, 136, 12, 0);
        h[148..156].copy_from_slice(b"        ");
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|&x| x as u32).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.0.extend_from_slice(&h);
    }

    /// Adds a directory.
    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.header(name, 0o755, 0, b'5');
        self
    }

    /// Adds a regular file.
    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.header(name, mode, data.len(), b'0');
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }

    /// The archive with its end-of-archive blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0; 1024]);
        self.0
    }
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The pause image for `arch` as a `docker save` archive tagged [`PAUSE_IMAGE`].
pub fn pause_image_archive(arch: &str) -> Option<Vec<u8>> {
    let elf = pause_elf(arch)?;
    let mut layer = Tar::default();
    layer.file("pause", 0o755, &elf);
    let layer = layer.finish();
    let diff_id = sha256_hex(&layer);
    let config = json!({
        "architecture": oci_arch(arch), "os": "linux",
        "config": {"Entrypoint": ["/pause"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
        "history": [{"created_by": "rkube: pause (generated)"}],
    })
    .to_string();
    let config_name = format!("{}.json", sha256_hex(config.as_bytes()));
    let manifest = json!([{
        "Config": config_name, "RepoTags": [PAUSE_IMAGE], "Layers": [format!("{diff_id}/layer.tar")],
    }])
    .to_string();
    let mut archive = Tar::default();
    archive
        .dir(&format!("{diff_id}/"))
        .file(&format!("{diff_id}/layer.tar"), 0o644, &layer)
        .file(&config_name, 0o644, config.as_bytes())
        .file("manifest.json", 0o644, manifest.as_bytes());
    Some(archive.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_header_points_at_the_code() {
        let elf = pause_elf("x86_64").unwrap();
        assert_eq!(&elf[..4], b"\x7fELF");
        assert_eq!(elf.len(), 120 + 9);
        let entry = u64::from_le_bytes(elf[24..32].try_into().unwrap());
        assert_eq!(entry, 0x40_0000 + 120);
        assert_eq!(&elf[120..], program("x86_64").unwrap().1);
        assert!(pause_elf("mips").is_none());
    }

    #[test]
    fn tar_headers_have_valid_checksums_and_padding() {
        let mut t = Tar::default();
        t.file("a", 0o644, b"hello");
        let t = t.finish();
        assert_eq!(t.len(), 512 + 512 + 1024);
        let h = &t[..512];
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        let mut copy = h.to_vec();
        copy[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, copy.iter().map(|&x| x as u32).sum::<u32>());
        assert_eq!(&h[124..135], b"00000000005");
        assert_eq!(&t[512..517], b"hello");
    }

    #[test]
    fn archive_manifest_names_the_pause_tag() {
        let a = pause_image_archive("x86_64").unwrap();
        let text = String::from_utf8_lossy(&a);
        assert!(text.contains(r#""RepoTags":["rkube.local/pause:1"]"#));
        assert!(text.contains(r#""Entrypoint":["/pause"]"#));
    }
}
