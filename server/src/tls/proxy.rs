//! The PROXY protocol (version 2, HAProxy's `send-proxy-v2`) on the listener: behind a TCP
//! balancer every connection comes from the balancer, which puts the client's real address in
//! a binary header before the TLS bytes. The header is believed only from the balancers named
//! by `serve --proxy-from` (CIDR blocks): from them it is read (and optional, so an operator on
//! the balancer host can still connect directly), and the client address of the connection —
//! what throttling, lockout and the audit see — becomes the header's source. From any other
//! peer a connection that starts with a PROXY header (either version) is refused: a client
//! cannot choose the address it is judged by. Parsing is the `ppp` crate's.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ppp::v2;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The signature that starts a version 1 header.
const V1_PREFIX: &[u8] = b"PROXY ";

/// How long a trusted balancer may take to send its header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The balancers whose PROXY headers are believed.
#[derive(Clone, Debug, Default)]
pub struct Trusted(Vec<ipnet::IpNet>);

impl Trusted {
    /// Parses `--proxy-from` values: CIDR blocks (`10.0.0.0/24`) or single addresses.
    pub fn parse(values: &[String]) -> anyhow::Result<Trusted> {
        let mut nets = Vec::new();
        for v in values.iter().flat_map(|v| v.split(',')) {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            let net = match v.parse::<ipnet::IpNet>() {
                Ok(n) => n,
                Err(_) => match v.parse::<IpAddr>() {
                    Ok(a) => ipnet::IpNet::from(a),
                    Err(_) => anyhow::bail!(
                        "--proxy-from {v} is not an address or CIDR block such as 10.0.0.5/32"
                    ),
                },
            };
            nets.push(net.trunc());
        }
        Ok(Trusted(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted balancer (IPv4-mapped IPv6 addresses compared as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&ip))
    }
}

/// Why a connection was not served.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// A PROXY header from a peer that is not a trusted balancer.
    Untrusted,
    /// A trusted balancer's header that could not be read.
    Malformed(String),
}

/// What the first bytes of a connection are, as far as they tell.
#[derive(Debug, PartialEq, Eq)]
enum Start {
    V2,
    V1,
    Other,
    /// Too few bytes yet to tell.
    Undecided,
}

fn classify(bytes: &[u8]) -> Start {
    let starts = |prefix: &[u8]| {
        let n = bytes.len().min(prefix.len());
        bytes[..n] == prefix[..n]
    };
    let (v2, v1) = (starts(v2::PROTOCOL_PREFIX), starts(V1_PREFIX));
    if v2 && bytes.len() >= v2::PROTOCOL_PREFIX.len() {
        Start::V2
    } else if v1 && bytes.len() >= V1_PREFIX.len() {
        Start::V1
    } else if v2 || v1 {
        Start::Undecided
    } else {
        Start::Other
    }
}

/// Looks at the first bytes of a new connection (without consuming them unless they are a
/// trusted header) and answers the client's address: the peer's, or the header's source when
/// a trusted balancer sent one.
pub async fn client_address(
    stream: &mut TcpStream,
    peer: SocketAddr,
    trusted: &Trusted,
) -> Result<SocketAddr, Refused> {
    let start = tokio::time::timeout(HEADER_TIMEOUT, peek_start(stream))
        .await
        .unwrap_or(Ok(Start::Other))
        .unwrap_or(Start::Other);
    match start {
        Start::Other | Start::Undecided => Ok(peer),
        Start::V1 if trusted.contains(peer.ip()) => Err(Refused::Malformed(
            "PROXY protocol version 1 is not accepted: configure send-proxy-v2".into(),
        )),
        Start::V1 | Start::V2 if !trusted.contains(peer.ip()) => Err(Refused::Untrusted),
        _ => tokio::time::timeout(HEADER_TIMEOUT, read_v2(stream, peer))
            .await
            .unwrap_or_else(|_| Err(Refused::Malformed("header not sent in time".into()))),
    }
}

/// Peeks until the start is decided (a TLS ClientHello decides on its first byte).
async fn peek_start(stream: &TcpStream) -> std::io::Result<Start> {
    let mut buf = [0u8; 16];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(Start::Other);
        }
        match classify(&buf[..n]) {
            Start::Undecided => tokio::time::sleep(Duration::from_millis(5)).await,
            decided => return Ok(decided),
        }
    }
}

/// Reads a whole version 2 header off the stream and answers its source address.
async fn read_v2(stream: &mut TcpStream, peer: SocketAddr) -> Result<SocketAddr, Refused> {
    let bad = |e: String| Refused::Malformed(e);
    let mut fixed = [0u8; 16];
    stream
        .read_exact(&mut fixed)
        .await
        .map_err(|e| bad(e.to_string()))?;
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let mut header = fixed.to_vec();
    header.resize(16 + len, 0);
    stream
        .read_exact(&mut header[16..])
        .await
        .map_err(|e| bad(e.to_string()))?;
    source_of(&header, peer)
}

/// The client address a complete version 2 header names (`LOCAL`, e.g. a health check, and
/// unspecified or UNIX families: the peer itself).
pub fn source_of(header: &[u8], peer: SocketAddr) -> Result<SocketAddr, Refused> {
    let parsed = v2::Header::try_from(header).map_err(|e| Refused::Malformed(e.to_string()))?;
    if parsed.command == v2::Command::Local {
        return Ok(peer);
    }
    Ok(match parsed.addresses {
        v2::Addresses::IPv4(a) => SocketAddr::new(IpAddr::V4(a.source_address), a.source_port),
        v2::Addresses::IPv6(a) => SocketAddr::new(IpAddr::V6(a.source_address), a.source_port),
        v2::Addresses::Unspecified | v2::Addresses::Unix(_) => peer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(source: &str) -> Vec<u8> {
        let src: SocketAddr = source.parse().unwrap();
        let dst: SocketAddr = if src.is_ipv4() {
            "10.0.0.1:8443".parse().unwrap()
        } else {
            "[2001:db8::1]:8443".parse().unwrap()
        };
        v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (src, dst),
        )
        .build()
        .unwrap()
    }

    #[test]
    fn trusted_blocks_and_addresses() {
        let t = Trusted::parse(&["10.0.0.0/24, 192.168.1.7".into(), "::1".into()]).unwrap();
        assert!(t.contains("10.0.0.200".parse().unwrap()));
        assert!(t.contains("192.168.1.7".parse().unwrap()));
        assert!(t.contains("::ffff:10.0.0.3".parse().unwrap()));
        assert!(t.contains("::1".parse().unwrap()));
        assert!(!t.contains("10.0.1.1".parse().unwrap()));
        assert!(!t.contains("192.168.1.8".parse().unwrap()));
        assert!(Trusted::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(Trusted::parse(&["balancer".into()]).is_err());
    }

    #[test]
    fn starts_are_told_apart() {
        let h = header("203.0.113.9:50000");
        assert_eq!(classify(&h), Start::V2);
        assert_eq!(classify(&h[..5]), Start::Undecided);
        assert_eq!(classify(b"PROXY TCP4 1.2.3.4"), Start::V1);
        assert_eq!(classify(&[0x16, 0x03, 0x01]), Start::Other);
        assert_eq!(classify(b"GET / HTTP/1.1"), Start::Other);
    }

    #[test]
    fn the_source_is_the_client() {
        let peer: SocketAddr = "10.0.0.5:40000".parse().unwrap();
        assert_eq!(
            source_of(&header("203.0.113.9:50000"), peer).unwrap(),
            "203.0.113.9:50000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            source_of(&header("[2001:db8::7]:443"), peer).unwrap(),
            "[2001:db8::7]:443".parse::<SocketAddr>().unwrap()
        );
        let local = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Local,
            v2::Protocol::Unspecified,
            v2::Addresses::Unspecified,
        )
        .build()
        .unwrap();
        assert_eq!(source_of(&local, peer).unwrap(), peer);
        let whole = header("203.0.113.9:50000");
        assert!(source_of(&whole[..20], peer).is_err(), "a cut header");
    }
}
