//! Which local user sent a loopback datagram: the owner of the sending
//! socket, asked of the kernel (Linux: one exact `sock_diag` lookup, about
//! 3 µs; Windows: the UDP table's owning process, then its token's user).
//! macOS has no lookup yet (see docs/usage.md, Who may command it).

use std::net::SocketAddr;

/// Why the sender's user could not be found.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("socket lookup failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the sending socket is gone")]
    NotFound,
    /// Windows: the UDP table names no process for the socket (Wine says
    /// process 0 for every one).
    #[cfg(windows)]
    #[error("the system names no process owning the sending socket")]
    NoOwner,
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
    #[cfg(windows)]
    return Some(windows::UdpOwners::new().map(|s| Box::new(s) as Box<dyn PeerOwners>));
    #[cfg(not(any(target_os = "linux", windows)))]
    None
}

/// `addr` with an IPv4-mapped IPv6 address turned into plain IPv4.
#[cfg(any(target_os = "linux", windows, test))]
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

#[cfg(windows)]
mod windows {
    use super::{unmapped, PeerError, PeerOwners, Sender};
    use std::mem::{offset_of, size_of};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    use std::{io, ptr};
    use windows_sys::Win32::Foundation::{
        CloseHandle, LocalFree, ERROR_INSUFFICIENT_BUFFER, HANDLE, HLOCAL, NO_ERROR,
    };
    use windows_sys::Win32::NetworkManagement::IpHelper::{
        GetExtendedUdpTable, MIB_UDP6ROW_OWNER_PID, MIB_UDP6TABLE_OWNER_PID, MIB_UDPROW_OWNER_PID,
        MIB_UDPTABLE_OWNER_PID, UDP_TABLE_OWNER_PID,
    };
    use windows_sys::Win32::Networking::WinSock::{AF_INET, AF_INET6};
    use windows_sys::Win32::Security::Authorization::ConvertSidToStringSidW;
    use windows_sys::Win32::Security::{
        EqualSid, GetTokenInformation, IsWellKnownSid, TokenUser, WinLocalSystemSid, PSID,
        TOKEN_QUERY, TOKEN_USER,
    };
    use windows_sys::Win32::System::Threading::{
        GetCurrentProcess, OpenProcess, OpenProcessToken, PROCESS_QUERY_LIMITED_INFORMATION,
    };

    /// Where a table's fields are, in 32-bit words (every field is made of
    /// them, so the table is read as `u32`s with no unsafe code).
    struct Layout {
        family: u16,
        /// Offset of the first row, and the size of a row.
        rows: usize,
        row: usize,
        /// The address is always first, then the port (network byte order in
        /// its low 16 bits) and the owning process.
        port: usize,
        pid: usize,
    }

    const V4: Layout = Layout {
        family: AF_INET,
        rows: offset_of!(MIB_UDPTABLE_OWNER_PID, table) / 4,
        row: size_of::<MIB_UDPROW_OWNER_PID>() / 4,
        port: offset_of!(MIB_UDPROW_OWNER_PID, dwLocalPort) / 4,
        pid: offset_of!(MIB_UDPROW_OWNER_PID, dwOwningPid) / 4,
    };

    const V6: Layout = Layout {
        family: AF_INET6,
        rows: offset_of!(MIB_UDP6TABLE_OWNER_PID, table) / 4,
        row: size_of::<MIB_UDP6ROW_OWNER_PID>() / 4,
        port: offset_of!(MIB_UDP6ROW_OWNER_PID, dwLocalPort) / 4,
        pid: offset_of!(MIB_UDP6ROW_OWNER_PID, dwOwningPid) / 4,
    };

    /// A handle closed on drop.
    struct Handle(HANDLE);

    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: the handle was opened by us, is valid and closed once.
            unsafe { CloseHandle(self.0) };
        }
    }

    /// Memory the system allocated for us, freed on drop.
    struct Local(HLOCAL);

    impl Drop for Local {
        fn drop(&mut self) {
            // SAFETY: the memory was allocated for us and is freed once.
            unsafe { LocalFree(self.0) };
        }
    }

    /// A token's user: a `TOKEN_USER` and the SID it points to, in one
    /// pointer-aligned buffer (the SID stays put when this moves).
    struct TokenUserSid(Vec<usize>);

    impl TokenUserSid {
        /// The user of `process`'s token.
        fn of(process: HANDLE) -> io::Result<Self> {
            let mut token = ptr::null_mut();
            // SAFETY: `process` is a valid process handle; `token` is written
            // on success only.
            if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } == 0 {
                return Err(io::Error::last_os_error());
            }
            let token = Handle(token);
            let mut len = 0u32;
            // SAFETY: a null buffer of size 0 asks only for the size.
            unsafe { GetTokenInformation(token.0, TokenUser, ptr::null_mut(), 0, &mut len) };
            let mut buf = vec![0usize; (len as usize).div_ceil(size_of::<usize>())];
            // SAFETY: `buf` is writable for `len` bytes or more.
            let ok = unsafe {
                GetTokenInformation(token.0, TokenUser, buf.as_mut_ptr().cast(), len, &mut len)
            };
            if ok == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(TokenUserSid(buf))
        }

        fn sid(&self) -> PSID {
            // SAFETY: the buffer holds a TOKEN_USER (written by
            // GetTokenInformation, pointer-aligned, large enough).
            unsafe { (*self.0.as_ptr().cast::<TOKEN_USER>()).User.Sid }
        }

        /// The SID as `S-1-5-...`.
        fn string(&self) -> Option<String> {
            let mut wide = ptr::null_mut();
            // SAFETY: the SID is valid; `wide` is written on success only.
            if unsafe { ConvertSidToStringSidW(self.sid(), &mut wide) } == 0 {
                return None;
            }
            let _free = Local(wide.cast());
            // SAFETY: on success `wide` is a NUL-terminated string, valid
            // until `_free` drops after it is copied.
            let text = unsafe {
                let len = (0..).take_while(|&i| *wide.add(i) != 0).count();
                std::slice::from_raw_parts(wide, len)
            };
            Some(String::from_utf16_lossy(text))
        }
    }

    /// Looks up the process owning a UDP socket in the system's UDP table,
    /// then the user of that process's token.
    pub struct UdpOwners {
        /// The user running cloudnap.
        me: TokenUserSid,
        table: Vec<u32>,
    }

    impl UdpOwners {
        pub fn new() -> io::Result<Self> {
            // SAFETY: the pseudo-handle of the current process needs no close.
            let me = TokenUserSid::of(unsafe { GetCurrentProcess() })?;
            Ok(UdpOwners {
                me,
                table: vec![0; 1024],
            })
        }

        /// Reads the UDP table of one address family into `self.table`.
        fn read(&mut self, family: u16) -> io::Result<()> {
            // The table may grow between the size query and the read.
            for _ in 0..4 {
                let mut bytes = (self.table.len() * 4) as u32;
                // SAFETY: `table` is writable for `bytes` bytes, 4-aligned.
                let err = unsafe {
                    GetExtendedUdpTable(
                        self.table.as_mut_ptr().cast(),
                        &mut bytes,
                        0,
                        family.into(),
                        UDP_TABLE_OWNER_PID,
                        0,
                    )
                };
                match err {
                    NO_ERROR => return Ok(()),
                    ERROR_INSUFFICIENT_BUFFER => {
                        self.table.resize((bytes as usize).div_ceil(4) + 64, 0)
                    }
                    e => return Err(io::Error::from_raw_os_error(e as i32)),
                }
            }
            Err(io::Error::other("the UDP table kept growing"))
        }

        /// The processes owning a socket that may have sent from `peer`: one
        /// bound to its address or to the wildcard, on its port.
        fn owners(&mut self, peer: SocketAddr, layout: &Layout) -> io::Result<Vec<u32>> {
            self.read(layout.family)?;
            let count = self.table.first().copied().unwrap_or(0) as usize;
            let rows = self.table.get(layout.rows..).unwrap_or_default();
            Ok(rows
                .chunks_exact(layout.row)
                .take(count)
                .filter(|row| u16::from_be(row[layout.port] as u16) == peer.port())
                .filter(|row| {
                    let ip = if layout.family == AF_INET {
                        IpAddr::from(Ipv4Addr::from(row[0].to_ne_bytes()))
                    } else {
                        let mut octets = [0u8; 16];
                        for (o, w) in octets.chunks_exact_mut(4).zip(&row[..4]) {
                            o.copy_from_slice(&w.to_ne_bytes());
                        }
                        Ipv6Addr::from(octets).into()
                    };
                    // A dual-stack socket sends IPv4 from the IPv6 table.
                    ip.is_unspecified() || unmapped(SocketAddr::new(ip, 0)).ip() == peer.ip()
                })
                .map(|row| row[layout.pid])
                .collect())
        }

        /// Who runs process `pid`.
        fn user_of(&self, pid: u32) -> Sender {
            // SAFETY: OpenProcess has no memory preconditions; null on failure.
            let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
            // e.g. another user's elevated process: fail safe, refused.
            let hidden = || Sender::Other(format!("pid {pid} (not inspectable)"));
            if process.is_null() {
                return hidden();
            }
            let process = Handle(process);
            let Ok(user) = TokenUserSid::of(process.0) else {
                return hidden();
            };
            // SAFETY: both SIDs are valid while `user` and `self` live.
            let (mine, system) = unsafe {
                (
                    EqualSid(user.sid(), self.me.sid()) != 0,
                    IsWellKnownSid(user.sid(), WinLocalSystemSid) != 0,
                )
            };
            if mine {
                Sender::Owner
            } else if system {
                Sender::Admin
            } else {
                Sender::Other(user.string().unwrap_or_else(|| format!("pid {pid}")))
            }
        }
    }

    impl PeerOwners for UdpOwners {
        fn sender(&mut self, _local: SocketAddr, peer: SocketAddr) -> Result<Sender, PeerError> {
            let peer = unmapped(peer);
            let mut pids = if peer.is_ipv4() {
                self.owners(peer, &V4)?
            } else {
                Vec::new()
            };
            pids.extend(self.owners(peer, &V6)?);
            pids.sort_unstable();
            pids.dedup();
            if pids.first() == Some(&0) {
                return Err(PeerError::NoOwner);
            }
            // Several sockets may match (wildcard and exact, or shared ports):
            // any one that may not command decides, fail safe.
            let senders: Vec<Sender> = pids.into_iter().map(|pid| self.user_of(pid)).collect();
            let refused = senders.iter().find(|s| !s.may_command());
            refused
                .or(senders.first())
                .cloned()
                .ok_or(PeerError::NotFound)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::net::UdpSocket;

        #[test]
        fn finds_the_owner_of_a_sending_socket_and_not_of_a_closed_one() {
            let mut owners = UdpOwners::new().unwrap();
            assert_eq!(owners.user_of(std::process::id()), Sender::Owner);
            for (server, client) in [("127.0.0.1:0", "127.0.0.1:0"), ("[::1]:0", "[::1]:0")] {
                let server = UdpSocket::bind(server).unwrap();
                let client = UdpSocket::bind(client).unwrap();
                let (s, c) = (server.local_addr().unwrap(), client.local_addr().unwrap());
                assert_eq!(owners.sender(s, c).unwrap(), Sender::Owner);
                drop(client);
                assert!(matches!(owners.sender(s, c), Err(PeerError::NotFound)));
            }
            let wildcard = UdpSocket::bind("0.0.0.0:0").unwrap();
            let from =
                SocketAddr::new([127, 0, 0, 1].into(), wildcard.local_addr().unwrap().port());
            assert_eq!(owners.sender(from, from).unwrap(), Sender::Owner);
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
