//! The virtual PIV card: answers SP 800-73-4 commands with software keys (P-256, RSA-2048), a
//! PIN and a PUK with retry counters, the 9B management key (3DES or AES, mutual
//! authentication by witness and challenge) that GENERATE and PUT DATA require, a signature
//! counter and state persisted in a JSON file. Written
//! independently of the agent's codec on purpose — the card must not share the agent's bugs;
//! OpenSC and yubico-piv-tool keep it honest. `vpcd` holds the transport to vsmartcard's vpcd.

pub mod state;
pub mod vpcd;

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rand::rngs::OsRng;
use rsa::traits::PublicKeyParts;
use rsa::BigUint;

pub use state::{CardState, StoredKey};

/// The full PIV AID with version; SELECT matches any prefix of at least 5 bytes.
pub const PIV_AID_FULL: [u8; 11] = [
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];

/// Algorithm ids.
pub const ALG_RSA2048: u8 = 0x07;
pub const ALG_P256: u8 = 0x11;

/// Status words the card answers.
pub mod sw {
    pub const OK: u16 = 0x9000;
    pub const WRONG_LENGTH: u16 = 0x6700;
    pub const SECURITY_NOT_SATISFIED: u16 = 0x6982;
    pub const PIN_BLOCKED: u16 = 0x6983;
    pub const WRONG_DATA: u16 = 0x6A80;
    pub const NOT_FOUND: u16 = 0x6A82;
    pub const WRONG_P1P2: u16 = 0x6A86;
    pub const REF_NOT_FOUND: u16 = 0x6A88;
    pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
    pub const CLA_NOT_SUPPORTED: u16 = 0x6E00;
    pub const NO_PRECISE_DIAGNOSIS: u16 = 0x6F00;
}

/// A parsed command APDU (the card's own parser).
#[derive(Debug, Clone)]
struct Cmd {
    cla: u8,
    ins: u8,
    p1: u8,
    p2: u8,
    data: Vec<u8>,
    /// Ne; 0 when there was no Le field.
    ne: usize,
}

fn parse_command(apdu: &[u8]) -> Option<Cmd> {
    let (header, body) = (apdu.get(..4)?, &apdu[4..]);
    let mut cmd = Cmd {
        cla: header[0],
        ins: header[1],
        p1: header[2],
        p2: header[3],
        data: Vec::new(),
        ne: 0,
    };
    let short_le = |b: u8| if b == 0 { 256 } else { usize::from(b) };
    let ext_le = |hi: u8, lo: u8| match usize::from(u16::from_be_bytes([hi, lo])) {
        0 => 65536,
        n => n,
    };
    match body {
        [] => {}
        [le] => cmd.ne = short_le(*le),
        [0, hi, lo] => cmd.ne = ext_le(*hi, *lo),
        [0, hi, lo, rest @ ..] => {
            let lc = usize::from(u16::from_be_bytes([*hi, *lo]));
            cmd.data = rest.get(..lc)?.to_vec();
            match &rest[lc..] {
                [] => {}
                [hi, lo] => cmd.ne = ext_le(*hi, *lo),
                _ => return None,
            }
        }
        [lc, rest @ ..] => {
            let lc = usize::from(*lc);
            cmd.data = rest.get(..lc)?.to_vec();
            match &rest[lc..] {
                [] => {}
                [le] => cmd.ne = short_le(*le),
                _ => return None,
            }
        }
    }
    Some(cmd)
}

/// Appends a BER-TLV with a one- to three-byte tag.
fn put_tlv(out: &mut Vec<u8>, tag: &[u8], value: &[u8]) {
    out.extend_from_slice(tag);
    let n = value.len();
    match n {
        0..=0x7F => out.push(n as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, n as u8]),
        _ => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(value);
}

fn tlv(tag: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_tlv(&mut out, tag, value);
    out
}

/// Splits a BER-TLV sequence into (tag bytes, value) pairs.
fn split_tlvs(mut input: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let mut pos = 1;
        if input[0] & 0x1F == 0x1F {
            while input.get(pos)? & 0x80 != 0 {
                pos += 1;
            }
            pos += 1;
        }
        let tag = input.get(..pos)?.to_vec();
        let first = *input.get(pos)?;
        pos += 1;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7F);
            let bytes = input.get(pos..pos + n)?;
            pos += n;
            bytes.iter().fold(0, |a, &b| (a << 8) | usize::from(b))
        };
        let value = input.get(pos..pos + len)?.to_vec();
        out.push((tag, value));
        input = &input[pos + len..];
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The card: persistent state plus what a power cycle clears.
pub struct VirtualCard {
    pub state: CardState,
    save: Option<std::path::PathBuf>,
    pin_verified: bool,
    /// The 9B management key was authenticated since PIV was selected (or the card reset).
    mgmt_authenticated: bool,
    /// The witness we sent (in the clear), waiting for the host's answer.
    mgmt_witness: Option<Vec<u8>>,
    /// Command chaining: (INS, P1, P2) and the data so far.
    chain: Option<(u8, u8, u8, Vec<u8>)>,
    /// Response bytes waiting for GET RESPONSE.
    pending: Vec<u8>,
}

impl VirtualCard {
    /// A card over `state`, saving to `save` after every change when given.
    pub fn new(state: CardState, save: Option<std::path::PathBuf>) -> Self {
        Self {
            state,
            save,
            pin_verified: false,
            mgmt_authenticated: false,
            mgmt_witness: None,
            chain: None,
            pending: Vec::new(),
        }
    }

    /// The ATR: T=1, historical bytes "dangjian" (TCK over T0..end).
    pub fn atr() -> Vec<u8> {
        let hist = b"dangjian";
        let mut atr = vec![0x3B, 0x80 | hist.len() as u8, 0x01];
        atr.extend_from_slice(hist);
        let tck = atr[1..].iter().fold(0u8, |a, b| a ^ b);
        atr.push(tck);
        atr
    }

    /// Power on or reset: the PIN is no longer verified, buffers are cleared. PIV stays the
    /// selected (default) application, as on a YubiKey.
    pub fn reset(&mut self) {
        self.pin_verified = false;
        self.mgmt_authenticated = false;
        self.mgmt_witness = None;
        self.chain = None;
        self.pending.clear();
    }

    fn persist(&self) {
        if let Some(path) = &self.save {
            if let Err(e) = self.state.save(path) {
                eprintln!("vcard: cannot save state to {}: {e}", path.display());
            }
        }
    }

    /// Answers one command APDU with a response APDU (data + SW1 SW2).
    pub fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        let Some(mut cmd) = parse_command(apdu) else {
            return sw::WRONG_LENGTH.to_be_bytes().to_vec();
        };
        if cmd.ins != 0xC0 {
            self.pending.clear();
        }
        if cmd.cla & !0x10 != 0x00 {
            return sw::CLA_NOT_SUPPORTED.to_be_bytes().to_vec();
        }
        // Command chaining: collect, answer 9000, run the command on the last part.
        if cmd.cla & 0x10 != 0 {
            match &mut self.chain {
                Some((ins, p1, p2, data)) if (*ins, *p1, *p2) == (cmd.ins, cmd.p1, cmd.p2) => {
                    data.extend_from_slice(&cmd.data)
                }
                _ => self.chain = Some((cmd.ins, cmd.p1, cmd.p2, cmd.data.clone())),
            }
            return sw::OK.to_be_bytes().to_vec();
        }
        if let Some((ins, p1, p2, mut data)) = self.chain.take() {
            if (ins, p1, p2) == (cmd.ins, cmd.p1, cmd.p2) {
                data.extend_from_slice(&cmd.data);
                cmd.data = data;
            }
        }
        if cmd.ins == 0xC0 {
            let ne = if cmd.ne == 0 { 256 } else { cmd.ne };
            if self.pending.is_empty() {
                return 0x6985u16.to_be_bytes().to_vec();
            }
            let rest = std::mem::take(&mut self.pending);
            return self.answer(rest, sw::OK, ne);
        }
        let (data, status) = match self.dispatch(&cmd) {
            Ok(data) => (data, sw::OK),
            Err(status) => (Vec::new(), status),
        };
        let ne = if cmd.ne == 0 { 256 } else { cmd.ne };
        self.answer(data, status, ne)
    }

    /// At most `ne` bytes now; the rest waits for GET RESPONSE behind `61xx`.
    fn answer(&mut self, mut data: Vec<u8>, status: u16, ne: usize) -> Vec<u8> {
        if data.len() > ne {
            self.pending = data.split_off(ne);
            let next = self.pending.len().min(256) as u8; // 256 → 00
            data.extend_from_slice(&[0x61, next]);
        } else {
            data.extend_from_slice(&status.to_be_bytes());
        }
        data
    }

    fn dispatch(&mut self, cmd: &Cmd) -> Result<Vec<u8>, u16> {
        match cmd.ins {
            0xA4 => self.select(cmd),
            0xCB => self.get_data(cmd),
            0xCA => Err(sw::NOT_FOUND),
            0x20 => self.verify(cmd),
            0x24 => self.change_pin(cmd),
            0x2C => self.reset_retry_counter(cmd),
            0x87 => self.general_authenticate(cmd),
            0x47 => self.generate(cmd),
            0xDB => self.put_data(cmd),
            // YubiKey extensions that yubico-piv-tool sends: version and serial number.
            0xFD => Ok(vec![5, 4, 3]),
            0xF8 => Ok(self.state.serial.to_be_bytes().to_vec()),
            0xF7 => self.get_metadata(cmd),
            0xF9 => self.attest(cmd),
            _ => Err(sw::INS_NOT_SUPPORTED),
        }
    }

    /// SELECT by AID. Another application's AID answers 6A82 and leaves PIV selected.
    fn select(&mut self, cmd: &Cmd) -> Result<Vec<u8>, u16> {
        let is_piv = cmd.p1 == 0x04 && cmd.data.len() >= 5 && PIV_AID_FULL.starts_with(&cmd.data);
        if !is_piv {
            return Err(sw::NOT_FOUND);
        }
        // Selecting PIV (again) resets its security status, as a YubiKey does; yubico-piv-tool
        // relies on it to read the retry counter after another program verified the PIN.
        self.pin_verified = false;
        self.mgmt_authenticated = false;
        self.mgmt_witness = None;
        let mut apt = Vec::new();
        put_tlv(&mut apt, &[0x4F], &PIV_AID_FULL[5..]);
        put_tlv(&mut apt, &[0x79], &tlv(&[0x4F], &PIV_AID_FULL[..5]));
        put_tlv(&mut apt, &[0x50], b"dangjian virtual PIV");
        let mut algs = Vec::new();
        for alg in [ALG_RSA2048, ALG_P256] {
            put_tlv(&mut algs, &[0x80], &[alg]);
        }
        put_tlv(&mut algs, &[0x06], &[0x00]);
        put_tlv(&mut apt, &[0xAC], &algs);
        Ok(tlv(&[0x61], &apt))
    }

    fn object_tag(data: &[u8]) -> Result<Vec<u8>, u16> {
        match split_tlvs(data).as_deref() {
            Some([(tag, value), ..]) if tag == &[0x5C] && !value.is_empty() => Ok(value.clone()),
            _ => Err(sw::WRONG_DATA),
        }
    }

    fn get_data(&mut self, cmd: &Cmd) -> Result<Vec<u8>, u16> {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return Err(sw::WRONG_P1P2);
        }
        let tag = Self::object_tag(&cmd.data)?;
        if tag == [0x7E] {
            // Discovery object: PIV AID and PIN usage policy (PIV PIN only).
            let mut inner = tlv(&[0x4F], &PIV_AID_FULL);
            put_tlv(&mut inner, &[0x5F, 0x2F], &[0x40, 0x00]);
            return Ok(tlv(&[0x7E], &inner));
        }
        self.state
            .objects
            .get(&hex(&tag))
            .and_then(|h| state::unhex(h))
            .ok_or(sw::NOT_FOUND)
    }

    fn tries_status(&self) -> u16 {
        if self.state.pin_tries_left == 0 {
            sw::PIN_BLOCKED
        } else {
            0x63C0 | u16::from(self.state.pin_tries_left)
        }
    }

    fn verify(&mut self, cmd: &Cmd) -> Result<Vec<u8>, u16> {
        if cmd.p2 != 0x80 {
            return Err(sw::REF_NOT_FOUND);
        }
        match (cmd.p1, cmd.data.len()) {
            (0xFF, 0) => {
                self.pin_verified = false;
                Ok(Vec::new())
            }
            (0x00, 0) if self.pin_verified => Ok(Vec::new()),
            (0x00, 0) => Err(self.tries_status()),
            (0x00, 8) => {
                if self.state.pin_tries_left == 0 {
                    return Err(sw::PIN_BLOCKED);
                }
                if cmd.data == state::padded(&self.state.pin) {
                    self.state.pin_tries_left = self.state.pin_max_tries;
                    self.pin_verified = true;
                    self.persist();
                    Ok(Vec::new())
                } else {
                    self.state.pin_tries_left -= 1;
                    self.pin_verified = false;
                    self.persist();
                    Err(self.tries_status())
                }
            }
            (0x00, _) => Err(sw::WRONG_DATA),
            _ => Err(sw::WRONG_P1P2),
        }
    }

    fn puk_status(&self) -> u16 {
        if self.state.puk_tries_left == 0 {
            sw::PIN_BLOCKED
        } else {
            0x63C0 | u16::from(self.state.puk_tries_left)
        }
    }

    /// CHANGE REFERENCE DATA of the PIN (P2 80) or the PUK (81): `old(8) ‖ new(8)`; a wrong
    /// old value counts against that reference's tries.
    fn change_pin(&mut self, cmd: &Cmd) -> Result<Vec<u8>, u16> {
        if cmd.p1 != 0x00 || !matches!(cmd.p2, 0x80 | 0x81) {
            return Err(sw::WRONG_P1P2);
        }
        if cmd.data.len() != 16 {
            return Err(sw::WRONG_DATA);
        }
        let puk = cmd.p2 == 0x81;
        let (value, left) = if puk {
            (&self.state.puk, self.state.puk_tries_left)
        } else {
            (&self.state.pin, self.state.pin_tries_left)
        };
        if left == 0 {
            return Err(sw::PIN_BLOCKED);
        }
        if cmd.data[..8] != state::padded(value)[..] {
            if puk {
                self.state.puk_tries_left -= 1;
            } else {
                self.state.pin_tries_left -= 1;
                self.pin_verified = false;
            }
            self.persist();
            return Err(if puk {
                self.puk_status()
            } else {
                self.tries_status()
            });
        }
        let new = state::unpadded(&cmd.data[8..]).ok_or(sw::WRONG_DATA)?;
        if puk {
            self.state.puk = new;
            self.state.puk_tries_left = self.state.puk_max_tries;
        } else {
            self.state.pin = new;
            self.state.pin_tries_left = self.state.pin_max_tries;
        }
        self.persist();
        Ok(Vec::new())
    }

    /// RESET RETRY COUNTER with the PUK: `PUK(8) ‖ new PIN(8)`. A wrong PUK counts against the
    /// PUK's tries; a blocked PUK answers 6983 for good.
    fn reset_retry_counter(&mut self, cmd: &Cmd) -> Result<Vec<u8>, u16> {
        if (cmd.p1, cmd.p2) != (0x00, 0x80) {
            return Err(sw::WRONG_P1P2);
        }
        if cmd.data.len() != 16 {
            return Err(sw::WRONG_DATA);
        }
        if self.state.puk_tries_left == 0 {
            return Err(sw::PIN_BLOCKED);
        }
        if cmd.data[..8] != state::padded(&self.state.puk)[..] {
            self.state.puk_tries_left -= 1;
            self.persist();
            return Err(self.puk_status());
        }
        let new = state::unpadded(&cmd.data[8..]).ok_or(sw::WRONG_DATA)?;
        self.state.pin = new;
        self.state.pin_tries_left = self.state.pin_max_tries;
        self.state.puk_tries_left = self.state.puk_max_tries;
        self.pin_verified = false;
        self.persist();
        Ok(Vec::new())
    }

    /// GET METADATA (YubiKey 5.3+) of the management key (9B), the PIN (80) and the PUK (81):
    /// algorithm (01), policy (02), default value (05), tries (06: total, left).
    fn get_metadata(&mut self, cmd: &Cmd) -> Result<Vec<u8>, u16> {
        if cmd.p1 != 0x00 {
            return Err(sw::WRONG_P1P2);
        }
        let mut out = Vec::new();
        match cmd.p2 {
            0x9B => {
                put_tlv(&mut out, &[0x01], &[self.state.mgmt_algorithm]);
                put_tlv(&mut out, &[0x02], &[0x00, 0x01]);
                let default = self
                    .state
                    .mgmt_key
                    .eq_ignore_ascii_case(state::DEFAULT_MGMT_KEY)
                    && self.state.mgmt_algorithm == 0x03;
                put_tlv(&mut out, &[0x05], &[u8::from(default)]);
            }
            0x80 | 0x81 => {
                let (default, max, left) = if cmd.p2 == 0x80 {
                    (
                        self.state.pin == "123456",
                        self.state.pin_max_tries,
                        self.state.pin_tries_left,
                    )
                } else {
                    (
                        self.state.puk == "12345678",
                        self.state.puk_max_tries,
                        self.state.puk_tries_left,
                    )
                };
                put_tlv(&mut out, &[0x01], &[0xFF]);
                put_tlv(&mut out, &[0x02], &[0x00, 0x00]);
                put_tlv(&mut out, &[0x05], &[u8::from(default)]);
                put_tlv(&mut out, &[0x06], &[max, left]);
            }
            _ => return Err(sw::WRONG_P1P2),
        }
        Ok(out)
    }

    /// One block through the management key's cipher (ECB), encrypting or decrypting.
    fn mgmt_block(&self, block: &mut [u8], encrypt: bool) -> Result<(), u16> {
        let key = state::unhex(&self.state.mgmt_key).ok_or(sw::NO_PRECISE_DIAGNOSIS)?;
        macro_rules! op {
            ($cipher:ty) => {{
                let c = <$cipher>::new_from_slice(&key).map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?;
                let b = GenericArray::from_mut_slice(block);
                if encrypt {
                    c.encrypt_block(b)
                } else {
                    c.decrypt_block(b)
                }
            }};
        }
        match self.state.mgmt_algorithm {
            0x03 => op!(des::TdesEde3),
            0x08 => op!(aes::Aes128),
            0x0A => op!(aes::Aes192),
            0x0C => op!(aes::Aes256),
            _ => return Err(sw::NO_PRECISE_DIAGNOSIS),
        }
        Ok(())
    }

    /// GENERAL AUTHENTICATE with the management key (9B), mutual authentication: `7C [80 00]`
    /// asks for a witness (answered encrypted); `7C [80 witness][81 challenge]` proves the host
    /// decrypted it and is answered with the challenge encrypted (`7C [82 …]`).
    fn mgmt_authenticate(&mut self, cmd: &Cmd) -> Result<Vec<u8>, u16> {
        self.mgmt_authenticated = false;
        let expected_witness = self.mgmt_witness.take();
        if cmd.p1 != self.state.mgmt_algorithm {
            return Err(sw::WRONG_P1P2);
        }
        let n = if cmd.p1 == 0x03 { 8 } else { 16 };
        let template = match split_tlvs(&cmd.data).as_deref() {
            Some([(tag, value)]) if tag == &[0x7C] => split_tlvs(value).ok_or(sw::WRONG_DATA)?,
            _ => return Err(sw::WRONG_DATA),
        };
        let find = |t: u8| {
            template
                .iter()
                .find(|(tag, _)| tag == &[t])
                .map(|(_, v)| v.clone())
        };
        match (find(0x80), find(0x81)) {
            (Some(w), None) if w.is_empty() => {
                let witness: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
                let mut encrypted = witness.clone();
                self.mgmt_block(&mut encrypted, true)?;
                self.mgmt_witness = Some(witness);
                Ok(tlv(&[0x7C], &tlv(&[0x80], &encrypted)))
            }
            (Some(w), Some(mut challenge)) if w.len() == n && challenge.len() == n => {
                if expected_witness.as_deref() != Some(&w[..]) {
                    return Err(sw::SECURITY_NOT_SATISFIED);
                }
                self.mgmt_block(&mut challenge, true)?;
                self.mgmt_authenticated = true;
                Ok(tlv(&[0x7C], &tlv(&[0x82], &challenge)))
            }
            _ => Err(sw::WRONG_DATA),
        }
    }

    fn general_authenticate(&mut self, cmd: &Cmd) -> Result<Vec<u8>, u16> {
        let slot = cmd.p2;
        if slot == 0x9B {
            return self.mgmt_authenticate(cmd);
        }
        if slot == 0xF9 {
            // The attestation key signs attestations only.
            return Err(sw::WRONG_P1P2);
        }
        let Some(key) = self.state.keys.get(&format!("{slot:02X}")).cloned() else {
            return Err(sw::NOT_FOUND);
        };
        if key.algorithm != cmd.p1 {
            return Err(sw::WRONG_P1P2);
        }
        let template = match split_tlvs(&cmd.data).as_deref() {
            Some([(tag, value)]) if tag == &[0x7C] => split_tlvs(value).ok_or(sw::WRONG_DATA)?,
            _ => return Err(sw::WRONG_DATA),
        };
        let wants_response = template.iter().any(|(t, v)| t == &[0x82] && v.is_empty());
        let challenge = template
            .iter()
            .find(|(t, _)| t == &[0x81])
            .map(|(_, v)| v.clone());
        let (true, Some(challenge)) = (wants_response, challenge) else {
            return Err(sw::WRONG_DATA);
        };
        if slot != 0x9E && !self.pin_verified {
            return Err(sw::SECURITY_NOT_SATISFIED);
        }
        let signature = match key.algorithm {
            ALG_P256 => {
                let signing = p256::ecdsa::SigningKey::from_pkcs8_pem(&key.pkcs8_pem)
                    .map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?;
                // ECDSA uses the leftmost 32 bytes of the hash; a shorter one is left-padded.
                let mut digest = [0u8; 32];
                let n = challenge.len().min(32);
                digest[32 - n..].copy_from_slice(&challenge[..n]);
                let sig: p256::ecdsa::Signature = signing
                    .sign_prehash(&digest)
                    .map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?;
                sig.to_der().as_bytes().to_vec()
            }
            ALG_RSA2048 => {
                if challenge.len() != 256 {
                    return Err(sw::WRONG_DATA);
                }
                let private = rsa::RsaPrivateKey::from_pkcs8_pem(&key.pkcs8_pem)
                    .map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?;
                let c = BigUint::from_bytes_be(&challenge);
                if &c >= private.n() {
                    return Err(sw::WRONG_DATA);
                }
                let m = rsa::hazmat::rsa_decrypt_and_check(&private, Some(&mut OsRng), &c)
                    .map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?;
                let bytes = m.to_bytes_be();
                let mut out = vec![0u8; 256 - bytes.len()];
                out.extend_from_slice(&bytes);
                out
            }
            _ => return Err(sw::NO_PRECISE_DIAGNOSIS),
        };
        if slot == 0x9C {
            // Digital signature key: PIN always.
            self.pin_verified = false;
        }
        self.state.signature_counter += 1;
        self.persist();
        Ok(tlv(&[0x7C], &tlv(&[0x82], &signature)))
    }

    /// GENERATE ASYMMETRIC KEY PAIR: only after the management key (9B), as on a real card.
    fn generate(&mut self, cmd: &Cmd) -> Result<Vec<u8>, u16> {
        let slot = cmd.p2;
        if !matches!(slot, 0x9A | 0x9C | 0x9D | 0x9E) {
            return Err(sw::WRONG_P1P2);
        }
        if !self.mgmt_authenticated {
            return Err(sw::SECURITY_NOT_SATISFIED);
        }
        let alg = match split_tlvs(&cmd.data).as_deref() {
            Some([(tag, value)]) if tag == &[0xAC] => split_tlvs(value)
                .and_then(|items| {
                    items
                        .into_iter()
                        .find(|(t, v)| t == &[0x80] && v.len() == 1)
                        .map(|(_, v)| v[0])
                })
                .ok_or(sw::WRONG_DATA)?,
            _ => return Err(sw::WRONG_DATA),
        };
        let (pem, public) = match alg {
            ALG_P256 => {
                let key = p256::ecdsa::SigningKey::random(&mut OsRng);
                let point = key.verifying_key().to_encoded_point(false);
                let pem = key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?;
                (pem.to_string(), tlv(&[0x86], point.as_bytes()))
            }
            ALG_RSA2048 => {
                let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048)
                    .map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?;
                let pem = key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?;
                let mut public = tlv(&[0x81], &key.n().to_bytes_be());
                put_tlv(&mut public, &[0x82], &key.e().to_bytes_be());
                (pem.to_string(), public)
            }
            _ => return Err(sw::WRONG_DATA),
        };
        self.state.keys.insert(
            format!("{slot:02X}"),
            StoredKey {
                algorithm: alg,
                pkcs8_pem: pem,
                generated: true,
            },
        );
        self.persist();
        Ok(tlv(&[0x7F, 0x49], &public))
    }

    /// PUT DATA `5C <tag> 53 …`: stores the object as given (the `53` wrapper included), only
    /// after the management key (9B).
    fn put_data(&mut self, cmd: &Cmd) -> Result<Vec<u8>, u16> {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return Err(sw::WRONG_P1P2);
        }
        if !self.mgmt_authenticated {
            return Err(sw::SECURITY_NOT_SATISFIED);
        }
        let items = split_tlvs(&cmd.data).ok_or(sw::WRONG_DATA)?;
        let [(tag5c, tag), (tag53, _)] = items.as_slice() else {
            return Err(sw::WRONG_DATA);
        };
        if tag5c != &[0x5C] || tag53 != &[0x53] || tag.is_empty() {
            return Err(sw::WRONG_DATA);
        }
        let object_start = 2 + tag.len();
        self.state
            .objects
            .insert(hex(tag), hex(&cmd.data[object_start..]));
        self.persist();
        Ok(Vec::new())
    }
}

/// The public key of a slot as rcgen takes it for the subject of a certificate.
struct SlotPublicKey {
    der: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
}

impl rcgen::PublicKeyData for SlotPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.der
    }

    fn algorithm(&self) -> &rcgen::SignatureAlgorithm {
        self.alg
    }
}

/// A non-negative number as a DER INTEGER.
fn der_uint(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(7);
    let mut value = bytes[start..].to_vec();
    if value[0] & 0x80 != 0 {
        value.insert(0, 0);
    }
    tlv(&[0x02], &value)
}

impl VirtualCard {
    /// ATTEST (YubiKey's `INS F9`, P1 = slot): a certificate for the public key in the slot,
    /// signed by the slot-F9 attestation key, with Yubico's extensions (firmware 5.4.3, the
    /// card's serial number, PIN policy once / touch policy never). A card without an
    /// attestation key answers 6D00 as a card without the command does; an empty slot 6A88;
    /// an imported key 6A80 (only keys generated on the card are attested).
    fn attest(&mut self, cmd: &Cmd) -> Result<Vec<u8>, u16> {
        let (Some(f9), Some(f9_object)) = (
            self.state.keys.get("F9").cloned(),
            self.state
                .objects
                .get("5FFF01")
                .and_then(|h| state::unhex(h)),
        ) else {
            return Err(sw::INS_NOT_SUPPORTED);
        };
        let slot = cmd.p1;
        if !matches!(slot, 0x9A | 0x9C | 0x9D | 0x9E) || cmd.p2 != 0 {
            return Err(sw::WRONG_P1P2);
        }
        let key = self
            .state
            .keys
            .get(&format!("{slot:02X}"))
            .cloned()
            .ok_or(sw::REF_NOT_FOUND)?;
        if !key.generated {
            return Err(sw::WRONG_DATA);
        }
        let subject = match key.algorithm {
            ALG_P256 => {
                let signing = p256::ecdsa::SigningKey::from_pkcs8_pem(&key.pkcs8_pem)
                    .map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?;
                SlotPublicKey {
                    der: signing
                        .verifying_key()
                        .to_encoded_point(false)
                        .as_bytes()
                        .to_vec(),
                    alg: &rcgen::PKCS_ECDSA_P256_SHA256,
                }
            }
            ALG_RSA2048 => {
                use rsa::pkcs1::EncodeRsaPublicKey;
                let private = rsa::RsaPrivateKey::from_pkcs8_pem(&key.pkcs8_pem)
                    .map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?;
                SlotPublicKey {
                    der: private
                        .to_public_key()
                        .to_pkcs1_der()
                        .map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?
                        .as_bytes()
                        .to_vec(),
                    alg: &rcgen::PKCS_RSA_SHA256,
                }
            }
            _ => return Err(sw::NO_PRECISE_DIAGNOSIS),
        };
        let signer_der = split_tlvs(&f9_object)
            .and_then(|outer| match outer.as_slice() {
                [(tag, inner)] if tag == &[0x53] => split_tlvs(inner),
                _ => None,
            })
            .and_then(|items| {
                items
                    .into_iter()
                    .find(|(tag, _)| tag == &[0x70])
                    .map(|(_, der)| der)
            })
            .ok_or(sw::NO_PRECISE_DIAGNOSIS)?;
        let f9_key =
            rcgen::KeyPair::from_pem(&f9.pkcs8_pem).map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?;
        let signer_params = rcgen::CertificateParams::from_ca_cert_der(&signer_der.into())
            .map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?;
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            rcgen::DnType::CommonName,
            format!("dangjian virtual PIV Attestation {slot:02x}"),
        );
        params.distinguished_name = dn;
        params.not_before = signer_params.not_before;
        params.not_after = signer_params.not_after;
        let mut serial: [u8; 16] = rand::random();
        serial[0] = (serial[0] & 0x7F).max(1);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        params.custom_extensions = vec![
            rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 41482, 3, 3],
                vec![5, 4, 3],
            ),
            rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 41482, 3, 7],
                der_uint(u64::from(self.state.serial)),
            ),
            rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 41482, 3, 8], vec![2, 1]),
        ];
        let issuer = signer_params
            .self_signed(&f9_key)
            .map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?;
        let statement = params
            .signed_by(&subject, &issuer, &f9_key)
            .map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?;
        Ok(statement.der().to_vec())
    }
}

/// A PIV certificate object for `der`: `53 L [70 L der] [71 01 00] [FE 00]`.
pub fn certificate_object(der: &[u8]) -> Vec<u8> {
    let mut inner = tlv(&[0x70], der);
    put_tlv(&mut inner, &[0x71], &[0x00]);
    put_tlv(&mut inner, &[0xFE], &[]);
    tlv(&[0x53], &inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> VirtualCard {
        VirtualCard::new(CardState::fresh("123456"), None)
    }

    fn sw_of(resp: &[u8]) -> u16 {
        u16::from_be_bytes([resp[resp.len() - 2], resp[resp.len() - 1]])
    }

    #[test]
    fn failed_select_keeps_piv_selected() {
        let mut c = card();
        assert_eq!(
            sw_of(&c.process(&[0, 0xA4, 4, 0, 5, 0xA0, 0, 0, 3, 0x99])),
            0x6A82
        );
        assert_eq!(sw_of(&c.process(&[0, 0x20, 0, 0x80])), 0x63C3);
    }

    #[test]
    fn pin_counts_down_and_blocks() {
        let mut c = card();
        let wrong = [
            0, 0x20, 0, 0x80, 8, b'6', b'5', b'4', b'3', b'2', b'1', 0xFF, 0xFF,
        ];
        assert_eq!(sw_of(&c.process(&wrong)), 0x63C2);
        assert_eq!(sw_of(&c.process(&wrong)), 0x63C1);
        assert_eq!(sw_of(&c.process(&wrong)), 0x6983);
        let right = [
            0, 0x20, 0, 0x80, 8, b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF,
        ];
        assert_eq!(sw_of(&c.process(&right)), 0x6983);
    }

    #[test]
    fn long_objects_come_through_get_response() {
        let mut c = card();
        let object = certificate_object(&[0x30; 600]);
        c.state.objects.insert("5FC105".into(), hex(&object));
        let first = c.process(&[0, 0xCB, 0x3F, 0xFF, 5, 0x5C, 3, 0x5F, 0xC1, 0x05, 0]);
        assert_eq!(first.len(), 258);
        assert_eq!(&first[256..], &[0x61, 0x00]);
        let second = c.process(&[0, 0xC0, 0, 0, 0]);
        assert_eq!(&second[256..], &[0x61, (object.len() - 512) as u8]);
        let third = c.process(&[0, 0xC0, 0, 0, (object.len() - 512) as u8]);
        assert_eq!(sw_of(&third), 0x9000);
        let mut all = first[..256].to_vec();
        all.extend_from_slice(&second[..256]);
        all.extend_from_slice(&third[..third.len() - 2]);
        assert_eq!(all, object);
    }

    fn block16(data: &[u8]) -> Vec<u8> {
        let mut cmd = vec![0, 0, 0, 0, 16];
        cmd.extend_from_slice(data);
        cmd
    }

    #[test]
    fn puk_counts_down_blocks_and_unblocks_the_pin() {
        let mut c = card();
        let rrc = |puk: &[u8; 8], pin: &[u8; 8]| {
            let mut data = puk.to_vec();
            data.extend_from_slice(pin);
            let mut cmd = block16(&data);
            cmd[1] = 0x2C;
            cmd[3] = 0x80;
            cmd
        };
        let wrong = rrc(b"87654321", b"654321\xFF\xFF");
        let right = rrc(b"12345678", b"654321\xFF\xFF");
        assert_eq!(sw_of(&c.process(&wrong)), 0x63C2);
        assert_eq!(c.state.puk_tries_left, 2);
        assert_eq!(sw_of(&c.process(&right)), 0x9000);
        assert_eq!(c.state.puk_tries_left, 3);
        assert_eq!(c.state.pin, "654321");
        for expected in [0x63C2, 0x63C1, 0x6983, 0x6983] {
            assert_eq!(sw_of(&c.process(&wrong)), expected);
        }
        assert_eq!(
            sw_of(&c.process(&right)),
            0x6983,
            "a blocked PUK stays blocked"
        );
        // GET METADATA of the PUK tells.
        let meta = c.process(&[0, 0xF7, 0, 0x81, 0]);
        assert_eq!(sw_of(&meta), 0x9000);
        assert!(meta.windows(4).any(|w| w == [0x06, 0x02, 0x03, 0x00]));
    }

    /// The management-key exchange with the card's own cipher; GENERATE waits for it.
    #[test]
    fn generate_needs_the_management_key() {
        let mut c = card();
        let generate = [0, 0x47, 0, 0x9A, 5, 0xAC, 3, 0x80, 1, 0x11, 0];
        assert_eq!(sw_of(&c.process(&generate)), 0x6982);
        let meta = c.process(&[0, 0xF7, 0, 0x9B, 0]);
        assert_eq!(&meta[..3], &[0x01, 0x01, 0x03]);
        let answer = c.process(&[0, 0x87, 3, 0x9B, 4, 0x7C, 2, 0x80, 0, 0]);
        assert_eq!(sw_of(&answer), 0x9000);
        assert_eq!(&answer[..4], &[0x7C, 0x0A, 0x80, 0x08]);
        let mut witness = answer[4..12].to_vec();
        c.mgmt_block(&mut witness, false).unwrap();
        let challenge = [7u8; 8];
        let mut cmd = vec![0, 0x87, 3, 0x9B, 0x16, 0x7C, 0x14, 0x80, 8];
        cmd.extend_from_slice(&witness);
        cmd.extend_from_slice(&[0x81, 8]);
        cmd.extend_from_slice(&challenge);
        cmd.push(0);
        let answer = c.process(&cmd);
        assert_eq!(sw_of(&answer), 0x9000);
        let mut expected = challenge.to_vec();
        c.mgmt_block(&mut expected, true).unwrap();
        assert_eq!(&answer[4..12], &expected[..]);
        assert_eq!(sw_of(&c.process(&generate)), 0x9000);
        // The same answer again (a replay) is refused: the witness is used up.
        assert_eq!(sw_of(&c.process(&cmd)), 0x6982);
        assert_eq!(sw_of(&c.process(&generate)), 0x6982);
    }

    #[test]
    fn atr_has_a_valid_check_byte() {
        let atr = VirtualCard::atr();
        assert_eq!(atr[1..].iter().fold(0u8, |a, b| a ^ b), 0);
    }
}
