//! The NodePort range (`--service-node-port-range`) as upstream's port allocator sees it:
//! its bounds, its error texts and the dynamic allocation order (KEP-3668: a random port
//! of the upper band first, the lower band kept for ports users ask for).

/// Why a port cannot be allocated (upstream's portallocator errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortError {
    NotInRange(String),
    Allocated,
    Full,
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortError::NotInRange(valid) => write!(
                f,
                "provided port is not in the valid range. The range of valid ports is {valid}"
            ),
            PortError::Allocated => f.write_str("provided port is already allocated"),
            PortError::Full => f.write_str("range is full"),
        }
    }
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub base: u16,
    pub size: u16,
}

impl PortRange {
    /// Parses upstream's forms: `30000-32767`, `30000+2768` or a single port.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("invalid port range {text:?}: expected e.g. 30000-32767");
        let text = text.trim();
        let num = |s: &str| s.trim().parse::<u32>().map_err(|_| bad());
        let (low, high) = if let Some((a, b)) = text.split_once('-') {
            (num(a)?, num(b)?)
        } else if let Some((a, b)) = text.split_once('+') {
            let low = num(a)?;
            let size = num(b)?;
            if size == 0 {
                return Err(bad());
            }
            (low, low + size - 1)
        } else {
            let p = num(text)?;
            (p, p)
        };
        if low == 0 || high > 65535 || high < low {
            return Err(bad());
        }
        Ok(PortRange {
            base: low as u16,
            size: (high - low + 1) as u16,
        })
    }

    fn last(&self) -> u32 {
        u32::from(self.base) + u32::from(self.size) - 1
    }

    pub fn contains(&self, port: i64) -> bool {
        port >= i64::from(self.base) && port <= i64::from(self.last())
    }

    /// `Ok` when `port` may be allocated from this range.
    pub fn check(&self, port: i64) -> Result<(), PortError> {
        if self.contains(port) {
            Ok(())
        } else {
            Err(PortError::NotInRange(self.to_string()))
        }
    }

    /// Every port once in dynamic allocation order, starting at random positions of the
    /// upper band, then the lower band.
    pub fn candidates(&self, seed: u64) -> impl Iterator<Item = i64> + '_ {
        let size = u64::from(self.size);
        let offset = range_offset(size);
        let upper_len = size - offset;
        let upper_start = seed % upper_len;
        let lower_start = if offset == 0 {
            0
        } else {
            (seed / upper_len) % offset
        };
        let base = i64::from(self.base);
        let upper =
            (0..upper_len).map(move |i| base + (offset + (upper_start + i) % upper_len) as i64);
        let lower = (0..offset).map(move |i| base + ((lower_start + i) % offset) as i64);
        upper.chain(lower)
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.base, self.last())
    }
}

/// Upstream's `calculateRangeOffset` for ports: min(max(16, size/32), 128); none for
/// ranges of 16 or fewer ports.
fn range_offset(size: u64) -> u64 {
    if size <= 16 {
        return 0;
    }
    (size / 32).clamp(16, 128)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn parse_and_messages() {
        let r = PortRange::parse("30000-32767").unwrap();
        assert_eq!(r.to_string(), "30000-32767");
        assert_eq!(PortRange::parse("30000+2768").unwrap(), r);
        assert_eq!(PortRange::parse("31000").unwrap().size, 1);
        for bad in ["", "x", "0-10", "10-5", "30000-70000", "1+0"] {
            assert!(PortRange::parse(bad).is_err(), "{bad}");
        }
        assert!(r.check(30000).is_ok() && r.check(32767).is_ok());
        assert_eq!(
            r.check(80).unwrap_err().to_string(),
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        assert_eq!(
            PortError::Allocated.to_string(),
            "provided port is already allocated"
        );
    }

    #[test]
    fn dynamic_order_covers_the_range_upper_band_first() {
        let r = PortRange::parse("30000-32767").unwrap();
        // 2768 / 32 = 86 ports of static band.
        for seed in [0, 5, 99_999, u64::MAX] {
            let all: Vec<i64> = r.candidates(seed).collect();
            assert_eq!(all.len(), 2768);
            assert_eq!(all.iter().collect::<HashSet<_>>().len(), 2768);
            assert!(all[..2768 - 86].iter().all(|p| *p >= 30086));
            assert!(all[2768 - 86..].iter().all(|p| *p < 30086));
        }
        let small = PortRange::parse("31000-31009").unwrap();
        assert_eq!(small.candidates(3).count(), 10);
    }
}
