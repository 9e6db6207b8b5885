//! The offline busybox image node tests run: built from busybox-static with umoci and
//! skopeo (no registry or internet needed), cached under /var/cache between runs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the offline busybox image is cached between runs.
const IMAGE_CACHE: &str = "/var/cache/rkube-images";
/// The image's reference.
pub const BUSYBOX: &str = "local.test/busybox:1";

/// Runs `cmd`, panicking with its stderr when it fails; its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (run scripts/install-deps.sh)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A busybox image as a `docker save` archive, built offline from busybox-static with
/// umoci and skopeo (as in ../shared/recipes), cached under /var/cache.
pub fn busybox_archive() -> PathBuf {
    let cached = Path::new(IMAGE_CACHE).join("busybox-2.tar");
    if cached.exists() {
        return cached;
    }
    std::fs::create_dir_all(IMAGE_CACHE).unwrap();
    let work = tempfile::tempdir_in(IMAGE_CACHE).unwrap();
    let w = work.path();
    let rootfs = w.join("rootfs/bin");
    std::fs::create_dir_all(&rootfs).unwrap();
    for dir in ["tmp", "etc", "root", "var"] {
        std::fs::create_dir_all(w.join("rootfs").join(dir)).unwrap();
    }
    std::fs::set_permissions(
        w.join("rootfs/tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("busybox"))
        .expect("/bin/busybox (busybox-static) is missing: run scripts/install-deps.sh");
    for applet in run(Command::new("/bin/busybox").arg("--list")).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", rootfs.join(applet)).unwrap();
        }
    }
    let umoci = |args: &[&str]| run(Command::new("umoci").current_dir(w).args(args));
    umoci(&["init", "--layout", "oci"]);
    umoci(&["new", "--image", "oci:busybox"]);
    umoci(&["unpack", "--image", "oci:busybox", "bundle"]);
    run(Command::new("cp")
        .args(["-a", "rootfs/.", "bundle/rootfs/"])
        .current_dir(w));
    umoci(&["repack", "--image", "oci:busybox", "bundle"]);
    umoci(&[
        "config",
        "--image",
        "oci:busybox",
        "--config.env",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--config.cmd",
        "sh",
    ]);
    let tmp = w.join("busybox.tar");
    run(Command::new("skopeo").current_dir(w).args([
        "copy",
        "oci:oci:busybox",
        &format!("docker-archive:{}:{BUSYBOX}", tmp.display()),
    ]));
    std::fs::rename(&tmp, &cached).unwrap();
    cached
}
