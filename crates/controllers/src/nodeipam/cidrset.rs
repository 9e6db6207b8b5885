//! A set of equal-sized subnets carved from a cluster CIDR (upstream `cidrset.CidrSet`):
//! allocate the next free one (searching on from the last allocation), mark ones already
//! in use as occupied, release them. Pure; the controller keeps one per cluster CIDR.

use std::fmt;
use std::net::IpAddr;

/// An IP network: address (host bits zero) and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    fn bits(&self) -> u8 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    fn as_u128(&self) -> u128 {
        match self.addr {
            IpAddr::V4(a) => u32::from(a) as u128,
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn from_u128(v4: bool, value: u128, prefix: u8) -> Cidr {
        let addr = if v4 {
            IpAddr::V4((value as u32).into())
        } else {
            IpAddr::V6(value.into())
        };
        Cidr { addr, prefix }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    /// Parses `a.b.c.d/n` or `x::y/n`, masking host bits off as Go's `ParseCIDR` does.
    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = || format!("invalid CIDR address: {s}");
        let (ip, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return Err(bad());
        }
        let c = Cidr { addr, prefix };
        let host = host_mask(bits, prefix);
        Ok(Cidr::from_u128(addr.is_ipv4(), c.as_u128() & !host, prefix))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn host_mask(bits: u8, prefix: u8) -> u128 {
    let host = u32::from(bits - prefix);
    if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    }
}

/// Why a CIDR set cannot be made or used (upstream's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range")]
    NoCidrsRemaining,
    #[error("New CIDR set failed; the node CIDR size is too big")]
    SubNetTooBig,
    #[error("node CIDR mask size {node} must be at least the cluster CIDR's mask size {cluster} and at most {bits}")]
    BadMaskSize { node: u8, cluster: u8, bits: u8 },
    #[error("cidr {cidr} is out the range of cluster cidr {cluster}")]
    OutOfRange { cidr: Cidr, cluster: Cidr },
}

/// The subnets of one cluster CIDR.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: Cidr,
    node_prefix: u8,
    max: usize,
    allocated: usize,
    next_candidate: usize,
    used: Vec<u64>,
}

impl CidrSet {
    /// The `/node_prefix` subnets of `cluster`. IPv6 sets are limited to 2^16 subnets and
    /// IPv4 ones to 2^24, as the bitmap is uncompressed.
    pub fn new(cluster: Cidr, node_prefix: u8) -> Result<CidrSet, CidrError> {
        let bits = cluster.bits();
        if node_prefix < cluster.prefix || node_prefix > bits {
            return Err(CidrError::BadMaskSize {
                node: node_prefix,
                cluster: cluster.prefix,
                bits,
            });
        }
        let diff = node_prefix - cluster.prefix;
        if diff > if cluster.addr.is_ipv4() { 24 } else { 16 } {
            return Err(CidrError::SubNetTooBig);
        }
        let max = 1usize << diff;
        Ok(CidrSet {
            cluster,
            node_prefix,
            max,
            allocated: 0,
            next_candidate: 0,
            used: vec![0; max.div_ceil(64)],
        })
    }

    /// The cluster CIDR.
    pub fn cluster(&self) -> Cidr {
        self.cluster
    }

    /// How many subnets are in use.
    pub fn allocated(&self) -> usize {
        self.allocated
    }

    /// How many subnets there are.
    pub fn capacity(&self) -> usize {
        self.max
    }

    fn bit(&self, i: usize) -> bool {
        self.used[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize, on: bool) {
        if self.bit(i) != on {
            self.used[i / 64] ^= 1 << (i % 64);
            if on {
                self.allocated += 1;
            } else {
                self.allocated -= 1;
            }
        }
    }

    fn block(&self, index: usize) -> Cidr {
        let shift = u32::from(self.cluster.bits() - self.node_prefix);
        let offset = if shift >= 128 {
            0
        } else {
            (index as u128) << shift
        };
        Cidr::from_u128(
            self.cluster.addr.is_ipv4(),
            self.cluster.as_u128() | offset,
            self.node_prefix,
        )
    }

    /// Allocates the next free subnet, searching on from the previous allocation.
    pub fn allocate_next(&mut self) -> Result<Cidr, CidrError> {
        if self.allocated == self.max {
            return Err(CidrError::NoCidrsRemaining);
        }
        let mut candidate = self.next_candidate;
        while self.bit(candidate) {
            candidate = (candidate + 1) % self.max;
        }
        self.next_candidate = (candidate + 1) % self.max;
        self.set(candidate, true);
        Ok(self.block(candidate))
    }

    /// The subnet indices `cidr` covers (all of the set when it contains the cluster CIDR).
    fn indices(&self, cidr: &Cidr) -> Result<(usize, usize), CidrError> {
        let out = || CidrError::OutOfRange {
            cidr: *cidr,
            cluster: self.cluster,
        };
        if cidr.addr.is_ipv4() != self.cluster.addr.is_ipv4() {
            return Err(out());
        }
        let bits = self.cluster.bits();
        let common = cidr.prefix.min(self.cluster.prefix);
        let net = |v: u128| v & !host_mask(bits, common);
        if net(cidr.as_u128()) != net(self.cluster.as_u128()) {
            return Err(out());
        }
        if cidr.prefix <= self.cluster.prefix {
            return Ok((0, self.max - 1));
        }
        let shift = u32::from(bits - self.node_prefix);
        let index = |v: u128| {
            let rel = v ^ self.cluster.as_u128();
            (if shift >= 128 { 0 } else { rel >> shift }) as usize
        };
        let first = cidr.as_u128();
        let last = first | host_mask(bits, cidr.prefix);
        Ok((index(first), index(last).min(self.max - 1)))
    }

    /// Marks `cidr` in use (fine if it already is).
    pub fn occupy(&mut self, cidr: &Cidr) -> Result<(), CidrError> {
        let (a, b) = self.indices(cidr)?;
        (a..=b).for_each(|i| self.set(i, true));
        Ok(())
    }

    /// Frees `cidr`.
    pub fn release(&mut self, cidr: &Cidr) -> Result<(), CidrError> {
        let (a, b) = self.indices(cidr)?;
        (a..=b).for_each(|i| self.set(i, false));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_in_order_and_wraps_after_release() {
        let mut set = CidrSet::new(cidr("10.244.0.0/22"), 24).unwrap();
        let got: Vec<String> = (0..4)
            .map(|_| set.allocate_next().unwrap().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "10.244.0.0/24",
                "10.244.1.0/24",
                "10.244.2.0/24",
                "10.244.3.0/24"
            ]
        );
        let err = set.allocate_next().unwrap_err();
        assert_eq!(
            err.to_string(),
            "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range"
        );
        set.release(&cidr("10.244.1.0/24")).unwrap();
        assert_eq!(set.allocate_next().unwrap().to_string(), "10.244.1.0/24");
    }

    #[test]
    fn occupy_skips_used_ranges_and_rejects_foreign_ones() {
        let mut set = CidrSet::new(cidr("10.0.0.0/16"), 24).unwrap();
        set.occupy(&cidr("10.0.0.0/23")).unwrap();
        assert_eq!(set.allocated(), 2);
        set.occupy(&cidr("10.0.0.0/24")).unwrap();
        assert_eq!(set.allocated(), 2);
        assert_eq!(set.allocate_next().unwrap().to_string(), "10.0.2.0/24");
        let err = set.occupy(&cidr("10.1.0.0/24")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cidr 10.1.0.0/24 is out the range of cluster cidr 10.0.0.0/16"
        );
        assert!(set.occupy(&cidr("fd00::/64")).is_err());
    }

    #[test]
    fn ipv6_and_bad_sizes() {
        let mut set = CidrSet::new(cidr("fd00:10::/56"), 64).unwrap();
        assert_eq!(set.allocate_next().unwrap().to_string(), "fd00:10::/64");
        assert_eq!(set.allocate_next().unwrap().to_string(), "fd00:10:0:1::/64");
        assert_eq!(
            CidrSet::new(cidr("fd00::/32"), 64).unwrap_err(),
            CidrError::SubNetTooBig
        );
        assert!(CidrSet::new(cidr("10.0.0.0/16"), 8).is_err());
        assert_eq!(cidr("10.1.2.3/16").to_string(), "10.1.0.0/16");
        assert!("10.0.0.0".parse::<Cidr>().is_err());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Allocate,
        Release(usize),
        Occupy(u8),
    }

    proptest! {
        /// Whatever the sequence, allocations never overlap, stay inside the cluster CIDR,
        /// and fail only when every subnet is in use.
        #[test]
        fn allocations_never_overlap(ops in proptest::collection::vec(
            prop_oneof![Just(Op::Allocate), any::<usize>().prop_map(Op::Release), any::<u8>().prop_map(Op::Occupy)],
            1..200,
        )) {
            let cluster = cidr("10.20.0.0/20");
            let mut set = CidrSet::new(cluster, 24).unwrap();
            let mut held: Vec<Cidr> = Vec::new();
            let mut occupied: HashSet<Cidr> = HashSet::new();
            for op in ops {
                match op {
                    Op::Allocate => match set.allocate_next() {
                        Ok(c) => {
                            prop_assert!(!held.contains(&c) && !occupied.contains(&c), "{c} handed out twice");
                            let n = set.indices(&c).unwrap();
                            prop_assert_eq!(n.0, n.1);
                            held.push(c);
                        }
                        Err(e) => {
                            prop_assert_eq!(e, CidrError::NoCidrsRemaining);
                            prop_assert_eq!(held.len() + occupied.len(), set.capacity());
                        }
                    },
                    Op::Release(i) if !held.is_empty() => {
                        let c = held.remove(i % held.len());
                        set.release(&c).unwrap();
                    }
                    Op::Release(_) => {}
                    Op::Occupy(i) => {
                        let c = cidr(&format!("10.20.{}.0/24", i % 16));
                        if !held.contains(&c) {
                            set.occupy(&c).unwrap();
                            occupied.insert(c);
                        }
                    }
                }
                prop_assert_eq!(set.allocated(), held.len() + occupied.len());
            }
        }
    }
}
