//! A Service IP range (`--service-cluster-ip-range`) as upstream's IPAddress-based
//! allocator sees it: which addresses may be handed out, and in which order.
//!
//! The network address is never used, nor IPv4's broadcast address. KEP-3070 splits the
//! range in two bands: dynamic allocation starts at a random address of the upper band and
//! falls back to the lower band, so the lower band stays free for addresses users ask for.

use std::net::IpAddr;

/// Why a requested address cannot come from this range (upstream's ipallocator errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeError {
    /// Outside every configured range (upstream's `ErrMismatchedNetwork`, what the
    /// ServiceCIDR allocator answers for an address no ServiceCIDR contains).
    MismatchedNetwork,
    /// Inside the prefix but not allocatable: the network or broadcast address.
    NotInRange { ip: IpAddr, valid: String },
}

impl std::fmt::Display for RangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RangeError::MismatchedNetwork => {
                f.write_str("the provided network does not match the current range")
            }
            RangeError::NotInRange { ip, valid } => write!(
                f,
                "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {valid}"
            ),
        }
    }
}

/// One service CIDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRange {
    /// Canonical prefix text, `10.43.0.0/16`.
    prefix: String,
    v6: bool,
    network: u128,
    bits: u32,
    /// First and last allocatable address.
    first: u128,
    last: u128,
    /// Size of the lower (static) band.
    offset: u128,
}

impl IpRange {
    /// Parses `10.43.0.0/16` (host bits are masked off, as the flag allows).
    pub fn parse(cidr: &str) -> Result<Self, String> {
        let bad = || format!("invalid service CIDR {cidr:?}: expected e.g. 10.43.0.0/16");
        let (ip, bits) = cidr.split_once('/').ok_or_else(bad)?;
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let bits: u32 = bits.parse().map_err(|_| bad())?;
        let (v6, width, value) = match ip {
            IpAddr::V4(v4) => (false, 32u32, u128::from(u32::from(v4))),
            IpAddr::V6(v6) => (true, 128u32, u128::from(v6)),
        };
        if bits > width {
            return Err(bad());
        }
        if v6 && bits < 64 {
            return Err(format!(
                "shortest allowed prefix length for service CIDR is 64, got {bits}"
            ));
        }
        let host_bits = width - bits;
        let mask = if host_bits >= 128 {
            0
        } else {
            (u128::MAX << host_bits) & (u128::MAX >> (128 - width))
        };
        let network = value & mask;
        let span = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let broadcast = network + span;
        let first = network + 1;
        // IPv6 has no broadcast address: its last address is usable.
        let last = if v6 {
            broadcast
        } else {
            broadcast.saturating_sub(1)
        };
        if last < first {
            return Err(format!(
                "service CIDR {cidr:?} is too small (at most /{})",
                if v6 { 127 } else { 30 }
            ));
        }
        let prefix = format!("{}/{bits}", to_ip(network, v6));
        Ok(IpRange {
            prefix,
            v6,
            network,
            bits,
            first,
            last,
            offset: range_offset(host_bits),
        })
    }

    /// The prefix, `10.43.0.0/16`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `IPv4` or `IPv6`.
    pub fn family(&self) -> &'static str {
        if self.v6 {
            "IPv6"
        } else {
            "IPv4"
        }
    }

    /// The network address (what upstream's dry-run allocation answers).
    pub fn network(&self) -> IpAddr {
        to_ip(self.network, self.v6)
    }

    /// The first allocatable address (the `kubernetes` Service's).
    pub fn first(&self) -> IpAddr {
        to_ip(self.first, self.v6)
    }

    /// Number of allocatable addresses.
    pub fn size(&self) -> u128 {
        self.last - self.first + 1
    }

    /// Whether `ip` lies inside the prefix (network and broadcast included).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (ip, self.v6) {
            (IpAddr::V4(v4), false) => {
                let value = u128::from(u32::from(v4));
                self.bits == 0 || (value >> (32 - self.bits)) == (self.network >> (32 - self.bits))
            }
            (IpAddr::V6(v6), true) => {
                let value = u128::from(v6);
                self.bits == 0
                    || (value >> (128 - self.bits)) == (self.network >> (128 - self.bits))
            }
            _ => false,
        }
    }

    /// Whether `ip` may be allocated from this range.
    pub fn check(&self, ip: IpAddr) -> Result<(), RangeError> {
        if !self.contains(ip) {
            return Err(RangeError::MismatchedNetwork);
        }
        let value = to_u128(ip);
        if value < self.first || value > self.last {
            return Err(RangeError::NotInRange {
                ip,
                valid: self.prefix.clone(),
            });
        }
        Ok(())
    }

    /// Every allocatable address once, in dynamic allocation order: the upper band from
    /// `seed`'s position (wrapping), then the lower band from its own random start.
    pub fn candidates(&self, seed: u128) -> impl Iterator<Item = IpAddr> + '_ {
        let upper_first = self.first + self.offset;
        let upper_len = self.last - upper_first + 1;
        let upper_start = seed % upper_len;
        let lower_len = self.offset;
        let lower_start = if lower_len == 0 {
            0
        } else {
            (seed / upper_len.max(1)) % lower_len
        };
        let upper = (0..upper_len).map(move |i| upper_first + (upper_start + i) % upper_len);
        let lower = (0..lower_len).map(move |i| self.first + (lower_start + i) % lower_len);
        upper.chain(lower).map(move |v| to_ip(v, self.v6))
    }
}

/// Upstream's `calculateRangeOffset`: min(max(16, size/16), 256) addresses of the range
/// (its full size, 2^host bits) are the static band; none for ranges of 16 or fewer.
fn range_offset(host_bits: u32) -> u128 {
    const MIN: u128 = 16;
    const MAX: u128 = 256;
    const STEP: u128 = 16;
    if host_bits >= 64 {
        return MAX;
    }
    let size = 1u128 << host_bits;
    if size <= MIN {
        return 0;
    }
    (size / STEP).clamp(MIN, MAX)
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn to_ip(value: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(value.into())
    } else {
        IpAddr::V4((value as u32).into())
    }
}

/// The family of an address as the API names it.
pub fn family_of(ip: IpAddr) -> &'static str {
    if ip.is_ipv6() {
        "IPv6"
    } else {
        "IPv4"
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bounds_and_errors() {
        let r = IpRange::parse("10.43.0.0/16").unwrap();
        assert_eq!(r.prefix(), "10.43.0.0/16");
        assert_eq!(r.first(), ip("10.43.0.1"));
        assert_eq!(r.size(), 65534);
        assert!(r.check(ip("10.43.255.254")).is_ok());
        assert_eq!(
            r.check(ip("10.43.255.255")).unwrap_err().to_string(),
            "the provided IP (10.43.255.255) is not in the valid range. The range of valid IPs is 10.43.0.0/16"
        );
        assert!(matches!(
            r.check(ip("10.43.0.0")),
            Err(RangeError::NotInRange { .. })
        ));
        assert_eq!(
            r.check(ip("1.1.1.1")).unwrap_err().to_string(),
            "the provided network does not match the current range"
        );
        assert_eq!(r.check(ip("fd00::1")), Err(RangeError::MismatchedNetwork));
        // Host bits are masked off.
        assert_eq!(
            IpRange::parse("10.96.5.7/12").unwrap().prefix(),
            "10.96.0.0/12"
        );
        assert!(IpRange::parse("10.0.0.0/31").is_err());
        assert!(IpRange::parse("fd00::/48").is_err());
        let v6 = IpRange::parse("fd00::/112").unwrap();
        assert!(v6.check(ip("fd00::ffff")).is_ok(), "no broadcast in IPv6");
        assert_eq!(v6.family(), "IPv6");
    }

    #[test]
    fn dynamic_order_prefers_the_upper_band_and_covers_everything() {
        let r = IpRange::parse("10.0.0.0/24").unwrap();
        // 256 / 16 = 16 addresses of static band.
        for seed in [0u128, 7, 1234, u128::MAX] {
            let all: Vec<IpAddr> = r.candidates(seed).collect();
            assert_eq!(all.len(), 254);
            assert_eq!(all.iter().collect::<HashSet<_>>().len(), 254);
            let (upper, lower) = all.split_at(254 - 16);
            assert!(upper
                .iter()
                .all(|a| to_u128(*a) >= to_u128(ip("10.0.0.17"))));
            assert!(lower
                .iter()
                .all(|a| to_u128(*a) <= to_u128(ip("10.0.0.16"))));
        }
        // Different seeds start at different places.
        assert_ne!(r.candidates(1).next(), r.candidates(2).next());
        // A tiny range has no static band.
        let tiny = IpRange::parse("10.0.0.0/28").unwrap();
        assert_eq!(tiny.candidates(3).count(), 14);
        assert_eq!(range_offset(16), 256);
        assert_eq!(range_offset(8), 16);
        assert_eq!(range_offset(10), 64);
    }
}
