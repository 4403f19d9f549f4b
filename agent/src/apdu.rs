//! APDUs (ISO/IEC 7816-4 as SP 800-73-4 uses them): command encoding in the short and the
//! extended form, command chaining (CLA bit 0x10) for data over 255 bytes, response decoding,
//! and `exchange`, which drives chaining, `61xx` + GET RESPONSE and `6Cxx` over any transmit
//! function. Pure: the reader is reached only through the function handed in.

use std::fmt;

use zeroize::Zeroizing;

use crate::error::PivError;

/// Most data a short command carries; longer data is chained.
pub const SHORT_MAX_DATA: usize = 255;
/// Most bytes one response may assemble through GET RESPONSE (guards against a looping card).
pub const MAX_RESPONSE: usize = 64 * 1024;

/// The chaining bit in CLA: "more commands of this chain follow".
pub const CLA_CHAINING: u8 = 0x10;

/// One command APDU. `le` is Ne, the most response bytes expected (1..=65536), or `None` for
/// no Le field. The data is zeroised on drop: VERIFY carries the PIN.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Zeroizing<Vec<u8>>,
    pub le: Option<u32>,
}

impl Command {
    /// A command with CLA 00 and no data or Le.
    pub fn new(ins: u8, p1: u8, p2: u8) -> Self {
        Self {
            cla: 0x00,
            ins,
            p1,
            p2,
            data: Zeroizing::new(Vec::new()),
            le: None,
        }
    }

    /// Sets the command data.
    pub fn with_data(mut self, data: Vec<u8>) -> Self {
        self.data = Zeroizing::new(data);
        self
    }

    /// Sets Ne (256 is written as `00` in the short form).
    pub fn with_le(mut self, ne: u32) -> Self {
        self.le = Some(ne);
        self
    }

    /// True when the command fits the short form (data ≤ 255, Ne ≤ 256).
    pub fn is_short(&self) -> bool {
        self.data.len() <= SHORT_MAX_DATA && self.le.is_none_or(|ne| ne <= 256)
    }

    /// Encodes the command: the short form when it fits, else the extended form.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.data.len() + 9));
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if self.is_short() {
            if !self.data.is_empty() {
                out.push(self.data.len() as u8);
                out.extend_from_slice(&self.data);
            }
            if let Some(ne) = self.le {
                out.push(if ne >= 256 { 0 } else { ne as u8 });
            }
        } else {
            if !self.data.is_empty() {
                let lc = self.data.len();
                out.extend_from_slice(&[0x00, (lc >> 8) as u8, lc as u8]);
                out.extend_from_slice(&self.data);
            }
            if let Some(ne) = self.le {
                if self.data.is_empty() {
                    out.push(0x00);
                }
                let ne = if ne >= 65536 { 0 } else { ne };
                out.extend_from_slice(&[(ne >> 8) as u8, ne as u8]);
            }
        }
        out
    }

    /// Splits the command into a chain of short commands (SP 800-73-4 part 2 §3.1): every part
    /// but the last has CLA bit 0x10 and no Le; the last carries the original Le.
    pub fn chain(&self) -> Vec<Command> {
        if self.data.len() <= SHORT_MAX_DATA {
            return vec![self.clone()];
        }
        let chunks: Vec<&[u8]> = self.data.chunks(SHORT_MAX_DATA).collect();
        let last = chunks.len() - 1;
        chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| Command {
                cla: if i < last {
                    self.cla | CLA_CHAINING
                } else {
                    self.cla
                },
                ins: self.ins,
                p1: self.p1,
                p2: self.p2,
                data: Zeroizing::new(chunk.to_vec()),
                le: if i < last { None } else { self.le },
            })
            .collect()
    }

    /// Decodes a command APDU in any of the ISO 7816-3 cases (1, 2S/E, 3S/E, 4S/E).
    pub fn decode(bytes: &[u8]) -> Result<Self, PivError> {
        let bad = || PivError::Malformed("命令 APDU 长度不符");
        if bytes.len() < 4 {
            return Err(bad());
        }
        let mut cmd = Command::new(bytes[1], bytes[2], bytes[3]);
        cmd.cla = bytes[0];
        let body = &bytes[4..];
        match body.len() {
            0 => {}
            1 => {
                cmd.le = Some(if body[0] == 0 {
                    256
                } else {
                    u32::from(body[0])
                })
            }
            _ if body[0] != 0 => {
                let lc = usize::from(body[0]);
                let data = body.get(1..1 + lc).ok_or_else(bad)?;
                cmd.data = Zeroizing::new(data.to_vec());
                match &body[1 + lc..] {
                    [] => {}
                    [le] => cmd.le = Some(if *le == 0 { 256 } else { u32::from(*le) }),
                    _ => return Err(bad()),
                }
            }
            3 => {
                let ne = u32::from(u16::from_be_bytes([body[1], body[2]]));
                cmd.le = Some(if ne == 0 { 65536 } else { ne });
            }
            _ => {
                let lc = usize::from(u16::from_be_bytes([body[1], body[2]]));
                let data = body.get(3..3 + lc).ok_or_else(bad)?;
                cmd.data = Zeroizing::new(data.to_vec());
                match &body[3 + lc..] {
                    [] => {}
                    [hi, lo] => {
                        let ne = u32::from(u16::from_be_bytes([*hi, *lo]));
                        cmd.le = Some(if ne == 0 { 65536 } else { ne });
                    }
                    _ => return Err(bad()),
                }
            }
        }
        Ok(cmd)
    }
}

/// Never prints the data of commands that carry secrets (VERIFY, CHANGE REFERENCE DATA,
/// RESET RETRY COUNTER).
impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = matches!(self.ins, 0x20 | 0x24 | 0x2C);
        f.debug_struct("Command")
            .field("cla", &format_args!("{:02X}", self.cla))
            .field("ins", &format_args!("{:02X}", self.ins))
            .field("p1", &format_args!("{:02X}", self.p1))
            .field("p2", &format_args!("{:02X}", self.p2))
            .field(
                "data",
                &if secret {
                    format!("<{} bytes hidden>", self.data.len())
                } else {
                    hex(&self.data)
                },
            )
            .field("le", &self.le)
            .finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// GET RESPONSE (`00 C0 00 00 xx`) for `ne` more bytes.
pub fn get_response(cla: u8, ne: u32) -> Command {
    let mut cmd = Command::new(0xC0, 0x00, 0x00).with_le(ne);
    cmd.cla = cla & !CLA_CHAINING;
    cmd
}

/// The two status bytes that end every response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(pub u16);

impl StatusWord {
    pub const SUCCESS: Self = Self(0x9000);

    pub fn is_success(self) -> bool {
        self == Self::SUCCESS
    }

    /// `61xx`: xx more bytes wait for GET RESPONSE (`00` means 256 or more).
    pub fn bytes_remaining(self) -> Option<u32> {
        (self.0 >> 8 == 0x61).then(|| match self.0 & 0xFF {
            0 => 256,
            n => u32::from(n),
        })
    }

    /// `6Cxx`: wrong Le; resend with Ne = xx (`00` means 256).
    pub fn exact_length(self) -> Option<u32> {
        (self.0 >> 8 == 0x6C).then(|| match self.0 & 0xFF {
            0 => 256,
            n => u32::from(n),
        })
    }
}

/// A response APDU: data and status word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub sw: StatusWord,
}

impl Response {
    /// Splits raw response bytes into data and SW1 SW2.
    pub fn parse(bytes: &[u8]) -> Result<Self, PivError> {
        match bytes {
            [data @ .., sw1, sw2] => Ok(Self {
                data: data.to_vec(),
                sw: StatusWord(u16::from_be_bytes([*sw1, *sw2])),
            }),
            _ => Err(PivError::Malformed("响应 APDU 少于 2 字节")),
        }
    }

    /// The data when the status is 9000, else the error the status means.
    pub fn into_result(self) -> Result<Vec<u8>, PivError> {
        if self.sw.is_success() {
            Ok(self.data)
        } else {
            Err(PivError::from_status(self.sw))
        }
    }

    /// Encodes data + SW1 SW2 (the card side of the codec).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.data.clone();
        out.extend_from_slice(&self.sw.0.to_be_bytes());
        out
    }
}

/// Sends `cmd` through `transmit` (which sends one encoded APDU and returns the raw answer):
/// chains data over 255 bytes, resends once on `6Cxx` with the length the card asks for, and
/// collects `61xx` continuations with GET RESPONSE. Returns the assembled response; a status
/// other than 9000 is returned as is, for the caller to interpret.
pub fn exchange(
    cmd: &Command,
    mut transmit: impl FnMut(&[u8]) -> Result<Vec<u8>, PivError>,
) -> Result<Response, PivError> {
    let parts = cmd.chain();
    let last = parts.len() - 1;
    let mut response = None;
    for (i, part) in parts.iter().enumerate() {
        let r = Response::parse(&transmit(&part.encode())?)?;
        if i < last && !r.sw.is_success() {
            return Ok(r);
        }
        response = Some(r);
    }
    let mut r = response.expect("a chain has at least one part");
    if let Some(ne) = r.sw.exact_length() {
        let again = parts[last].clone().with_le(ne);
        r = Response::parse(&transmit(&again.encode())?)?;
    }
    let mut data = std::mem::take(&mut r.data);
    while let Some(ne) = r.sw.bytes_remaining() {
        r = Response::parse(&transmit(&get_response(cmd.cla, ne).encode())?)?;
        data.extend_from_slice(&r.data);
        if data.len() > MAX_RESPONSE {
            return Err(PivError::Malformed("响应过长"));
        }
    }
    Ok(Response { data, sw: r.sw })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(ins: u8, p1: u8, p2: u8) -> Command {
        Command::new(ins, p1, p2)
    }

    #[test]
    fn short_cases_encode_byte_for_byte() {
        // Case 1: VERIFY with no data reads the retry counter (SP 800-73-4 part 2 §3.2.1).
        assert_eq!(&*cmd(0x20, 0x00, 0x80).encode(), &[0x00, 0x20, 0x00, 0x80]);
        // Case 2: GET RESPONSE for 256 bytes.
        assert_eq!(
            &*get_response(0x00, 256).encode(),
            &[0x00, 0xC0, 0x00, 0x00, 0x00]
        );
        // Case 3: PIN 123456 padded with FF.
        let verify = cmd(0x20, 0x00, 0x80).with_data(b"123456\xFF\xFF".to_vec());
        assert_eq!(
            &*verify.encode(),
            &[0x00, 0x20, 0x00, 0x80, 0x08, b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF]
        );
        // Case 4: GET DATA for the PIV authentication certificate, Le 00.
        let get = cmd(0xCB, 0x3F, 0xFF)
            .with_data(vec![0x5C, 0x03, 0x5F, 0xC1, 0x05])
            .with_le(256);
        assert_eq!(
            &*get.encode(),
            &[0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00]
        );
    }

    #[test]
    fn extended_cases_encode_byte_for_byte() {
        let case2 = cmd(0xCB, 0x3F, 0xFF).with_le(65536);
        assert!(!case2.is_short());
        assert_eq!(
            &*case2.encode(),
            &[0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x00]
        );
        let case2 = cmd(0xCB, 0x3F, 0xFF).with_le(0x0400);
        assert_eq!(
            &*case2.encode(),
            &[0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x04, 0x00]
        );

        let data = vec![0x11; 300];
        let case4 = cmd(0xDB, 0x3F, 0xFF).with_data(data.clone()).with_le(65536);
        let encoded = case4.encode();
        assert_eq!(&encoded[..7], &[0x00, 0xDB, 0x3F, 0xFF, 0x00, 0x01, 0x2C]);
        assert_eq!(&encoded[7..307], &data[..]);
        assert_eq!(&encoded[307..], &[0x00, 0x00]);
        assert_eq!(Command::decode(&encoded).unwrap(), case4);
    }

    #[test]
    fn every_case_decodes_back() {
        for c in [
            cmd(0x20, 0x00, 0x80),
            cmd(0xC0, 0, 0).with_le(256),
            cmd(0xC0, 0, 0).with_le(8),
            cmd(0x20, 0, 0x80).with_data(vec![1; 8]),
            cmd(0xCB, 0x3F, 0xFF)
                .with_data(vec![0x5C, 1, 0x7E])
                .with_le(256),
            cmd(0xCB, 0x3F, 0xFF).with_le(1000),
            cmd(0xDB, 0x3F, 0xFF).with_data(vec![7; 1000]),
        ] {
            assert_eq!(Command::decode(&c.encode()).unwrap(), c, "{c:?}");
        }
        assert!(Command::decode(&[0, 0xA4, 4]).is_err());
        assert!(Command::decode(&[0, 0xA4, 4, 0, 5, 1, 2]).is_err());
    }

    #[test]
    fn long_data_is_chained_in_255_byte_parts() {
        let data: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        let put = cmd(0xDB, 0x3F, 0xFF).with_data(data.clone());
        let parts = put.chain();
        assert_eq!(parts.len(), 3);
        assert_eq!(&parts[0].encode()[..5], &[0x10, 0xDB, 0x3F, 0xFF, 0xFF]);
        assert_eq!(&parts[1].encode()[..5], &[0x10, 0xDB, 0x3F, 0xFF, 0xFF]);
        assert_eq!(&parts[2].encode()[..5], &[0x00, 0xDB, 0x3F, 0xFF, 90]);
        assert_eq!(parts[2].encode().len(), 5 + 90);
        let joined: Vec<u8> = parts.iter().flat_map(|p| p.data.to_vec()).collect();
        assert_eq!(joined, data);
        // A short command is its own chain.
        assert_eq!(cmd(0x20, 0, 0x80).chain().len(), 1);
    }

    #[test]
    fn verify_debug_hides_the_pin() {
        let verify = cmd(0x20, 0x00, 0x80).with_data(b"123456\xFF\xFF".to_vec());
        let printed = format!("{verify:?}");
        assert!(!printed.contains("313233"), "{printed}");
        assert!(printed.contains("hidden"));
    }

    #[test]
    fn status_words() {
        assert_eq!(StatusWord(0x6100).bytes_remaining(), Some(256));
        assert_eq!(StatusWord(0x6110).bytes_remaining(), Some(16));
        assert_eq!(StatusWord(0x9000).bytes_remaining(), None);
        assert_eq!(StatusWord(0x6C08).exact_length(), Some(8));
        assert_eq!(StatusWord(0x6A82).to_string(), "6A82");
        let r = Response::parse(&[1, 2, 0x90, 0x00]).unwrap();
        assert_eq!(r.data, [1, 2]);
        assert!(r.sw.is_success());
        assert_eq!(r.encode(), [1, 2, 0x90, 0x00]);
        assert!(Response::parse(&[0x90]).is_err());
    }

    /// A scripted card: answers each expected APDU with a canned response, in order.
    fn scripted(script: Vec<(Vec<u8>, Vec<u8>)>) -> impl FnMut(&[u8]) -> Result<Vec<u8>, PivError> {
        let mut steps = script.into_iter();
        move |apdu: &[u8]| {
            let (expected, answer) = steps.next().expect("no more steps");
            assert_eq!(apdu, &expected[..]);
            Ok(answer)
        }
    }

    #[test]
    fn response_chaining_collects_61xx_with_get_response() {
        let get = cmd(0xCB, 0x3F, 0xFF)
            .with_data(vec![0x5C, 0x03, 0x5F, 0xC1, 0x05])
            .with_le(256);
        let mut first = vec![0xAA; 256];
        first.extend([0x61, 0x00]);
        let mut second = vec![0xBB; 256];
        second.extend([0x61, 0x20]);
        let mut third = vec![0xCC; 0x20];
        third.extend([0x90, 0x00]);
        let transmit = scripted(vec![
            (get.encode().to_vec(), first),
            (vec![0x00, 0xC0, 0x00, 0x00, 0x00], second),
            (vec![0x00, 0xC0, 0x00, 0x00, 0x20], third),
        ]);
        let r = exchange(&get, transmit).unwrap();
        assert!(r.sw.is_success());
        assert_eq!(r.data.len(), 256 + 256 + 0x20);
        assert_eq!(r.data[0], 0xAA);
        assert_eq!(r.data[256], 0xBB);
        assert_eq!(r.data[512], 0xCC);
    }

    #[test]
    fn command_chaining_stops_when_the_card_refuses_a_part() {
        let put = cmd(0xDB, 0x3F, 0xFF).with_data(vec![0; 300]);
        let parts = put.chain();
        let transmit = scripted(vec![(parts[0].encode().to_vec(), vec![0x69, 0x82])]);
        let r = exchange(&put, transmit).unwrap();
        assert_eq!(r.sw, StatusWord(0x6982));
    }

    #[test]
    fn command_chaining_sends_every_part_then_collects_the_answer() {
        let put = cmd(0xDB, 0x3F, 0xFF).with_data(vec![0; 300]);
        let parts = put.chain();
        let transmit = scripted(vec![
            (parts[0].encode().to_vec(), vec![0x90, 0x00]),
            (parts[1].encode().to_vec(), vec![0x90, 0x00]),
        ]);
        assert!(exchange(&put, transmit).unwrap().sw.is_success());
    }

    #[test]
    fn wrong_length_is_resent_with_the_length_asked() {
        let get = cmd(0xCB, 0x3F, 0xFF)
            .with_data(vec![0x5C, 1, 0x7E])
            .with_le(8);
        let mut exact = get.clone().with_le(0x14).encode().to_vec();
        let answer = {
            let mut a = vec![0x7E; 0x14];
            a.extend([0x90, 0x00]);
            a
        };
        let transmit = scripted(vec![
            (get.encode().to_vec(), vec![0x6C, 0x14]),
            (std::mem::take(&mut exact), answer),
        ]);
        assert_eq!(exchange(&get, transmit).unwrap().data.len(), 0x14);
    }
}
