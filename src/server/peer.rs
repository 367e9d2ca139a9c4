//! Which local user sent a loopback datagram: the owner of the sending
//! socket, asked of the kernel (Linux: one exact `sock_diag` lookup, about
//! 3 µs). Other platforms have no lookup yet (see README, Security).

use std::net::SocketAddr;

/// Why the sender's user could not be found.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("socket lookup failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the sending socket is gone")]
    NotFound,
    #[error("the kernel's answer could not be read")]
    BadAnswer,
}

/// Who sent a datagram, as far as commanding cloudnap goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// The user running cloudnap.
    Owner,
    /// root (Unix) or the system account (Windows): trusted too.
    Admin,
    /// Another user (their id, for the log).
    Other(String),
}

impl Sender {
    /// Whether this sender may command cloudnap.
    pub fn may_command(&self) -> bool {
        matches!(self, Sender::Owner | Sender::Admin)
    }

    /// A Unix sender by uid, for a cloudnap run by `owner`.
    pub fn of_uid(uid: u32, owner: u32) -> Sender {
        match uid {
            _ if uid == owner => Sender::Owner,
            0 => Sender::Admin,
            other => Sender::Other(format!("uid {other}")),
        }
    }
}

/// Finds who owns the local UDP socket a datagram came from.
pub trait PeerOwners: Send {
    /// Who owns the socket at `peer` that sent a datagram to our socket at
    /// `local`.
    fn sender(&mut self, local: SocketAddr, peer: SocketAddr) -> Result<Sender, PeerError>;
}

/// The platform's lookup; `None` where there is none yet.
pub fn system() -> Option<std::io::Result<Box<dyn PeerOwners>>> {
    #[cfg(target_os = "linux")]
    return Some(linux::SockDiag::new().map(|s| Box::new(s) as Box<dyn PeerOwners>));
    #[cfg(not(target_os = "linux"))]
    None
}

/// `addr` with an IPv4-mapped IPv6 address turned into plain IPv4.
fn unmapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), a.port()),
            None => addr,
        },
        v4 => v4,
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::{unmapped, PeerError, PeerOwners, Sender};
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
    use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_UDP};
    use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
    use netlink_packet_sock_diag::SockDiagMessage;
    use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket};
    use std::net::SocketAddr;

    /// A `NETLINK_SOCK_DIAG` socket asking for one UDP socket at a time.
    pub struct SockDiag {
        /// Our effective uid.
        me: u32,
        socket: Socket,
        seq: u32,
        buf: Vec<u8>,
    }

    impl SockDiag {
        pub fn new() -> std::io::Result<Self> {
            let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
            socket.bind_auto()?;
            socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
            // The kernel answers within the send; never wait on it.
            socket.set_non_blocking(true)?;
            Ok(SockDiag {
                // SAFETY: geteuid has no preconditions and cannot fail.
                me: unsafe { libc::geteuid() },
                socket,
                seq: 0,
                buf: vec![0; 8192],
            })
        }
    }

    impl PeerOwners for SockDiag {
        fn sender(&mut self, local: SocketAddr, peer: SocketAddr) -> Result<Sender, PeerError> {
            let peer = unmapped(peer);
            let mut local = unmapped(local);
            if local.ip().is_unspecified() || local.is_ipv4() != peer.is_ipv4() {
                // Bound to a wildcard: the sender wrote to a loopback address
                // (only a connected sender's lookup depends on which).
                local.set_ip(peer.ip());
            }
            // The kernel looks up the socket a packet from `local` to `peer`
            // would be delivered to: the sender's own.
            let mut id = if peer.is_ipv4() {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            };
            id.source_address = local.ip();
            id.source_port = local.port();
            id.destination_address = peer.ip();
            id.destination_port = peer.port();
            id.cookie = [0xff; 8]; // INET_DIAG_NOCOOKIE
            self.seq = self.seq.wrapping_add(1);
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST;
            header.sequence_number = self.seq;
            let mut request = NetlinkMessage::new(
                header,
                SockDiagMessage::InetRequest(InetRequest {
                    family: if peer.is_ipv4() { AF_INET } else { AF_INET6 },
                    protocol: IPPROTO_UDP,
                    extensions: ExtensionFlags::empty(),
                    states: StateFlags::all(),
                    socket_id: id,
                })
                .into(),
            );
            request.finalize();
            let len = request.buffer_len();
            self.buf.resize(len.max(8192), 0);
            request.serialize(&mut self.buf[..len]);
            self.socket.send(&self.buf[..len], 0)?;
            loop {
                let n = self.socket.recv(&mut &mut self.buf[..], 0)?;
                let answer = NetlinkMessage::<SockDiagMessage>::deserialize(&self.buf[..n])
                    .map_err(|_| PeerError::BadAnswer)?;
                if answer.header.sequence_number != self.seq {
                    continue; // a late answer to an earlier question
                }
                return match answer.payload {
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                        Ok(Sender::of_uid(r.header.uid, self.me))
                    }
                    NetlinkPayload::Error(_) => Err(PeerError::NotFound),
                    _ => Err(PeerError::BadAnswer),
                };
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::net::UdpSocket;

        #[test]
        fn finds_the_owner_of_a_sending_socket_and_not_of_a_closed_one() {
            let mut diag = SockDiag::new().unwrap();
            // The tests may run as root: then the owner is root too.
            for (server, client) in [("127.0.0.1:0", "127.0.0.1:0"), ("[::1]:0", "[::1]:0")] {
                let server = UdpSocket::bind(server).unwrap();
                let client = UdpSocket::bind(client).unwrap();
                let (s, c) = (server.local_addr().unwrap(), client.local_addr().unwrap());
                assert_eq!(diag.sender(s, c).unwrap(), Sender::Owner);
                client.connect(s).unwrap(); // nc -u connects
                assert_eq!(diag.sender(s, c).unwrap(), Sender::Owner);
                let wildcard = SocketAddr::new([0, 0, 0, 0].into(), s.port());
                assert_eq!(diag.sender(wildcard, c).unwrap(), Sender::Owner);
                drop(client);
                assert!(matches!(diag.sender(s, c), Err(PeerError::NotFound)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_and_root_may_command_others_may_not() {
        assert_eq!(Sender::of_uid(1000, 1000), Sender::Owner);
        assert_eq!(Sender::of_uid(0, 1000), Sender::Admin);
        assert_eq!(Sender::of_uid(0, 0), Sender::Owner);
        assert_eq!(Sender::of_uid(1001, 1000), Sender::Other("uid 1001".into()));
        assert!(Sender::Owner.may_command() && Sender::Admin.may_command());
        assert!(!Sender::Other("uid 1001".into()).may_command());
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:9".parse().unwrap();
        assert_eq!(unmapped(mapped), SocketAddr::from(([127, 0, 0, 1], 9)));
    }
}
