//! The link to vsmartcard's vpcd (a pcscd reader driver): the card connects over TCP; each
//! message is a 2-byte big-endian length and a payload. One-byte payloads are control messages
//! (00 power off, 01 power on, 02 reset, 04 get ATR); longer ones are command APDUs, answered
//! with the response APDU. Closing the socket is removing the card; reconnecting inserts it.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::VirtualCard;

/// Requests from outside (signal handlers): take the card out, put it back in.
#[derive(Default, Clone)]
pub struct Control {
    pub remove: Arc<AtomicBool>,
    pub insert: Arc<AtomicBool>,
}

/// Connects to vpcd at `addr` and serves the card forever, reconnecting when vpcd goes away
/// and honouring remove/insert requests.
pub fn serve(card: &mut VirtualCard, addr: &str, control: &Control, verbose: bool) -> ! {
    let mut inserted = true;
    let mut announced = false;
    loop {
        if !inserted {
            if control.insert.swap(false, Ordering::SeqCst) {
                inserted = true;
                eprintln!("vcard: inserting");
            } else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        }
        control.remove.store(false, Ordering::SeqCst);
        let stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                if !announced {
                    eprintln!("vcard: waiting for vpcd at {addr} ({e})");
                    announced = true;
                }
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        announced = false;
        eprintln!("vcard: connected to vpcd at {addr}");
        card.reset();
        let removed = session(card, stream, control, verbose);
        if removed {
            eprintln!("vcard: removed");
            inserted = false;
        } else {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Serves one connection; true when it ended because removal was requested.
fn session(
    card: &mut VirtualCard,
    mut stream: TcpStream,
    control: &Control,
    verbose: bool,
) -> bool {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if control.remove.swap(false, Ordering::SeqCst) {
            let _ = stream.shutdown(Shutdown::Both);
            return true;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return false,
        }
        while buffer.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([buffer[0], buffer[1]]));
            if buffer.len() < 2 + len {
                break;
            }
            let message: Vec<u8> = buffer.drain(..2 + len).skip(2).collect();
            let reply = match message.as_slice() {
                [0x00] => {
                    card.reset();
                    None
                }
                [0x01] | [0x02] => {
                    card.reset();
                    None
                }
                [0x04] => Some(VirtualCard::atr()),
                [_] => None,
                apdu => {
                    let response = card.process(apdu);
                    if verbose {
                        // VERIFY, CHANGE REFERENCE DATA and RESET RETRY COUNTER carry PINs.
                        let secret = matches!(apdu.get(1), Some(0x20 | 0x24 | 0x2C));
                        let shown = if secret && apdu.len() > 5 {
                            format!("{} <PIN hidden>", super::hex(&apdu[..5]))
                        } else {
                            super::hex(apdu)
                        };
                        eprintln!("vcard: > {shown}\nvcard: < {}", super::hex(&response));
                    }
                    Some(response)
                }
            };
            if let Some(reply) = reply {
                let mut out = (reply.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&reply);
                if stream.write_all(&out).is_err() {
                    return false;
                }
            }
        }
    }
}
