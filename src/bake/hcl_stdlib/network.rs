//! CIDR arithmetic: go-cty-funcs' `cidr` on apparentlymart/go-cidr.
//! Addresses are handled as integers of their width (32 or 128 bits).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hcl::eval::FuncDef;
use hcl::Value;

use super::{fixed, integer, string, variadic, Result};

/// A network as Go's `net.ParseCIDR` gives it: the address masked to its
/// prefix, the prefix length, the address width.
#[derive(Clone, Copy)]
struct Network {
    addr: u128,
    prefix: u32,
    bits: u32,
}

impl Network {
    fn parse(text: &str) -> Result<Network> {
        let invalid = || format!("invalid CIDR expression: invalid CIDR address: {text}");
        let (addr, prefix) = text.split_once('/').ok_or_else(invalid)?;
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        let prefix: u32 = if prefix.chars().all(|c| c.is_ascii_digit()) && !prefix.is_empty() {
            prefix.parse().map_err(|_| invalid())?
        } else {
            return Err(invalid());
        };
        let (addr, bits) = match addr {
            IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        };
        if prefix > bits {
            return Err(invalid());
        }
        Ok(Network { addr: addr & mask(prefix, bits), prefix, bits })
    }

    fn last(&self) -> u128 {
        self.addr | (!mask(self.prefix, self.bits) & full(self.bits))
    }

    fn contains(&self, addr: u128) -> bool {
        addr & mask(self.prefix, self.bits) == self.addr
    }

    fn with_prefix(addr: u128, prefix: u32, bits: u32) -> Network {
        Network { addr: addr & mask(prefix, bits), prefix, bits }
    }

    fn text(&self) -> String {
        format!("{}/{}", address(self.addr, self.bits), self.prefix)
    }
}

fn full(bits: u32) -> u128 {
    if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

fn mask(prefix: u32, bits: u32) -> u128 {
    if prefix == 0 {
        0
    } else {
        (full(bits) << (bits - prefix)) & full(bits)
    }
}

fn address(addr: u128, bits: u32) -> String {
    if bits == 32 {
        Ipv4Addr::from(addr as u32).to_string()
    } else {
        Ipv6Addr::from(addr).to_string()
    }
}

/// `cidrhost(prefix, hostnum)`: a negative number counts from the end.
pub(super) fn cidrhost() -> FuncDef {
    fixed(2, |a| {
        let num = integer(&a, 1)?;
        let network = Network::parse(&string(&a, 0)?)?;
        let host_bits = network.bits - network.prefix;
        let max = full(host_bits);
        let magnitude = if num < 0 { (-(num as i128) - 1) as u128 } else { num as u128 };
        if magnitude > max {
            return Err(format!("prefix of {} does not accommodate a host numbered {num}", network.prefix));
        }
        let host = if num < 0 { max - magnitude } else { magnitude };
        Ok(Value::from(address(network.addr | host, network.bits)))
    })
}

/// `cidrnetmask(prefix)`: the mask written as an address.
pub(super) fn cidrnetmask() -> FuncDef {
    fixed(1, |a| {
        let network = Network::parse(&string(&a, 0)?)?;
        Ok(Value::from(address(mask(network.prefix, network.bits), network.bits)))
    })
}

/// `cidrsubnet(prefix, newbits, netnum)`.
pub(super) fn cidrsubnet() -> FuncDef {
    fixed(3, |a| {
        let new_bits = integer(&a, 1)?;
        let num = integer(&a, 2)?;
        let network = Network::parse(&string(&a, 0)?)?;
        if new_bits > 32 {
            return Err("may not extend prefix by more than 32 bits".into());
        }
        let new_bits = u32::try_from(new_bits).map_err(|_| "newbits must not be negative".to_string())?;
        let prefix = network.prefix + new_bits;
        if prefix > network.bits {
            return Err(format!("insufficient address space to extend prefix of {} by {new_bits}", network.prefix));
        }
        // go-cidr reads the number as unsigned, so a negative one is too big.
        if num < 0 || (num as u128) > full(new_bits) {
            return Err(format!("prefix extension of {new_bits} does not accommodate a subnet numbered {num}"));
        }
        let addr = network.addr | ((num as u128) << (network.bits - prefix));
        Ok(Value::from(Network::with_prefix(addr, prefix, network.bits).text()))
    })
}

/// `cidrsubnets(prefix, newbits...)`: consecutive subnets, each aligned to
/// its own size after the one before.
pub(super) fn cidrsubnets() -> FuncDef {
    variadic(1, |a| {
        let network = Network::parse(&string(&a, 0)?)?;
        if a.len() == 1 {
            return Ok(Value::Array(Vec::new()));
        }
        let first = integer(&a, 1)? + network.prefix as i64;
        let first = first.clamp(0, network.bits as i64) as u32;
        // go-cidr's PreviousSubnet: the block of the first size just before.
        let mut current = Network::with_prefix(network.addr.wrapping_sub(1) & full(network.bits), first, network.bits);
        let mut out = Vec::new();
        for i in 1..a.len() {
            let length = integer(&a, i)?;
            if length < 1 {
                return Err(format!("argument {}: must extend prefix by at least one bit", i + 1));
            }
            if length > 32 {
                return Err(format!("argument {}: may not extend prefix by more than 32 bits", i + 1));
            }
            let length = length as u32 + network.prefix;
            if length > network.bits {
                let protocol = if network.bits == 32 { "IPv4" } else { "IPv6" };
                return Err(format!(
                    "argument {}: would extend prefix to {length} bits, which is too long for an {protocol} address",
                    i + 1
                ));
            }
            // go-cidr's NextSubnet.
            let block = Network::with_prefix(current.last(), length, network.bits);
            let after = block.last().wrapping_add(1) & full(network.bits);
            let next = Network::with_prefix(after, length, network.bits);
            if after == 0 || !network.contains(next.addr) {
                return Err(format!(
                    "argument {}: not enough remaining address space for a subnet with a prefix of {length} bits after {}",
                    i + 1,
                    current.text()
                ));
            }
            current = next;
            out.push(Value::from(current.text()));
        }
        Ok(Value::Array(out))
    })
}
