//! The PIV card application (NIST SP 800-73-4 part 2): typed ids (`SlotId`, `AlgorithmId`,
//! `ObjectId`), the command builders and response parsers (pure, byte-for-byte tested), and the
//! operations — SELECT, GET DATA, VERIFY, GENERAL AUTHENTICATE, GENERATE ASYMMETRIC KEY PAIR,
//! PUT DATA — over any `Apdu` link (the reader's, or a scripted card in tests).

use std::fmt;
use std::str::FromStr;

use crate::apdu::{Command, Response};
use crate::error::PivError;
use crate::pin::{Pin, PinStatus};
use crate::tlv;

/// The PIV application identifier without its version (SP 800-73-4 part 1 §2.2), as OpenSC
/// selects it; a card matches by prefix.
pub const PIV_AID: [u8; 9] = [0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00];

/// Instruction bytes.
pub mod ins {
    pub const SELECT: u8 = 0xA4;
    pub const GET_DATA: u8 = 0xCB;
    pub const VERIFY: u8 = 0x20;
    pub const GENERAL_AUTHENTICATE: u8 = 0x87;
    pub const GENERATE_ASYMMETRIC_KEY_PAIR: u8 = 0x47;
    pub const PUT_DATA: u8 = 0xDB;
    pub const GET_RESPONSE: u8 = 0xC0;
    pub const CHANGE_REFERENCE_DATA: u8 = 0x24;
    pub const RESET_RETRY_COUNTER: u8 = 0x2C;
    /// YubiKey extension: GET METADATA of a key or PIN reference.
    pub const GET_METADATA: u8 = 0xF7;
    /// YubiKey extension (4.3+): ATTEST — a certificate for the key in slot P1, signed by the
    /// slot-F9 attestation key, made only for keys generated on the card.
    pub const ATTEST: u8 = 0xF9;
}

/// The PIV application PIN's key reference (P2 of VERIFY).
pub const PIV_PIN: u8 = 0x80;
/// The PIN unblocking key's reference (P2 of CHANGE REFERENCE DATA).
pub const PIV_PUK: u8 = 0x81;
/// The card management key's reference (slot 9B).
pub const MANAGEMENT_KEY: u8 = 0x9B;

/// Anything that exchanges one command for one assembled response: the reader's transaction
/// (`transaction::Link`) or a test double.
pub trait Apdu {
    fn exchange(&mut self, cmd: &Command) -> Result<Response, PivError>;
}

/// A key slot (SP 800-78-4 table 4-2 key references).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotId {
    /// 9A — PIV authentication: the TLS client key.
    Authentication = 0x9A,
    /// 9C — digital signature (PIN always).
    Signature = 0x9C,
    /// 9D — key management.
    KeyManagement = 0x9D,
    /// 9E — card authentication (no PIN).
    CardAuthentication = 0x9E,
}

impl SlotId {
    /// The data object that holds the slot's certificate.
    pub fn certificate_object(self) -> ObjectId {
        match self {
            Self::Authentication => ObjectId::CertAuthentication,
            Self::Signature => ObjectId::CertSignature,
            Self::KeyManagement => ObjectId::CertKeyManagement,
            Self::CardAuthentication => ObjectId::CertCardAuthentication,
        }
    }
}

impl TryFrom<u8> for SlotId {
    type Error = PivError;
    fn try_from(b: u8) -> Result<Self, PivError> {
        match b {
            0x9A => Ok(Self::Authentication),
            0x9C => Ok(Self::Signature),
            0x9D => Ok(Self::KeyManagement),
            0x9E => Ok(Self::CardAuthentication),
            _ => Err(PivError::Malformed("未知的密钥槽位")),
        }
    }
}

impl FromStr for SlotId {
    type Err = PivError;
    fn from_str(s: &str) -> Result<Self, PivError> {
        let b = u8::from_str_radix(s.trim_start_matches("0x"), 16)
            .map_err(|_| PivError::Malformed("未知的密钥槽位"))?;
        Self::try_from(b)
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02X}", *self as u8)
    }
}

/// A key algorithm (SP 800-78-4 table 6-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlgorithmId {
    /// 07 — RSA 2048: the card does the raw operation, the host pads (PSS for TLS 1.3).
    Rsa2048 = 0x07,
    /// 11 — ECDSA over P-256: the card signs a 32-byte digest.
    EccP256 = 0x11,
}

impl AlgorithmId {
    /// How many bytes GENERAL AUTHENTICATE takes: the digest for ECDSA, the modulus for RSA.
    pub fn input_len(self) -> usize {
        match self {
            Self::Rsa2048 => 256,
            Self::EccP256 => 32,
        }
    }
}

impl TryFrom<u8> for AlgorithmId {
    type Error = PivError;
    fn try_from(b: u8) -> Result<Self, PivError> {
        match b {
            0x07 => Ok(Self::Rsa2048),
            0x11 => Ok(Self::EccP256),
            _ => Err(PivError::Malformed("不支持的密钥算法")),
        }
    }
}

impl FromStr for AlgorithmId {
    type Err = PivError;
    fn from_str(s: &str) -> Result<Self, PivError> {
        match s.to_ascii_lowercase().as_str() {
            "rsa2048" | "rsa-2048" | "07" => Ok(Self::Rsa2048),
            "p256" | "p-256" | "eccp256" | "11" => Ok(Self::EccP256),
            _ => Err(PivError::Malformed("不支持的密钥算法")),
        }
    }
}

impl fmt::Display for AlgorithmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rsa2048 => "RSA-2048",
            Self::EccP256 => "ECDSA P-256",
        })
    }
}

/// A PIV data object (SP 800-73-4 part 1 table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectId {
    /// 7E — discovery object.
    Discovery,
    /// 5FC107 — card capability container.
    Ccc,
    /// 5FC102 — card holder unique identifier.
    Chuid,
    /// 5FC105 — X.509 certificate for PIV authentication (slot 9A).
    CertAuthentication,
    /// 5FC10A — certificate for digital signature (9C).
    CertSignature,
    /// 5FC10B — certificate for key management (9D).
    CertKeyManagement,
    /// 5FC101 — certificate for card authentication (9E).
    CertCardAuthentication,
    /// 5FC10C — key history object.
    KeyHistory,
    /// 5FFF01 — YubiKey: the certificate of the slot-F9 attestation key.
    AttestationCertificate,
}

impl ObjectId {
    /// The tag as it goes into the `5C` tag list.
    pub fn tag(self) -> &'static [u8] {
        match self {
            Self::Discovery => &[0x7E],
            Self::Ccc => &[0x5F, 0xC1, 0x07],
            Self::Chuid => &[0x5F, 0xC1, 0x02],
            Self::CertAuthentication => &[0x5F, 0xC1, 0x05],
            Self::CertSignature => &[0x5F, 0xC1, 0x0A],
            Self::CertKeyManagement => &[0x5F, 0xC1, 0x0B],
            Self::CertCardAuthentication => &[0x5F, 0xC1, 0x01],
            Self::KeyHistory => &[0x5F, 0xC1, 0x0C],
            Self::AttestationCertificate => &[0x5F, 0xFF, 0x01],
        }
    }
}

/// A public key returned by GENERATE ASYMMETRIC KEY PAIR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Uncompressed point `04 X Y` (65 bytes).
    EccP256 { point: Vec<u8> },
    /// Modulus and public exponent, big-endian.
    Rsa { modulus: Vec<u8>, exponent: Vec<u8> },
}

// ---- command builders (pure) ----

/// SELECT the PIV application: `00 A4 04 00 09 A0 00 00 03 08 00 00 10 00 00`.
pub fn select_command() -> Command {
    Command::new(ins::SELECT, 0x04, 0x00)
        .with_data(PIV_AID.to_vec())
        .with_le(256)
}

/// GET DATA: `00 CB 3F FF Lc 5C <len> <tag> 00`.
pub fn get_data_command(object: ObjectId) -> Command {
    Command::new(ins::GET_DATA, 0x3F, 0xFF)
        .with_data(tlv::encode(0x5C, object.tag()))
        .with_le(256)
}

/// VERIFY the PIV PIN (`00 20 00 80 08 <PIN padded with FF>`), or without data to read the
/// retry counter (`00 20 00 80`).
pub fn verify_command(pin: Option<&Pin>) -> Command {
    let cmd = Command::new(ins::VERIFY, 0x00, PIV_PIN);
    match pin {
        Some(pin) => {
            let mut cmd = cmd;
            cmd.data = pin.padded();
            cmd
        }
        None => cmd,
    }
}

/// CHANGE REFERENCE DATA of the PIN (`reference` 80) or the PUK (81):
/// `00 24 00 <ref> 10 <old padded with FF> <new padded with FF>`.
pub fn change_reference_command(reference: u8, old: &Pin, new: &Pin) -> Command {
    let mut cmd = Command::new(ins::CHANGE_REFERENCE_DATA, 0x00, reference);
    cmd.data.extend_from_slice(&old.padded());
    cmd.data.extend_from_slice(&new.padded());
    cmd
}

/// RESET RETRY COUNTER of the PIN with the PUK: `00 2C 00 80 10 <PUK> <new PIN>` (each padded
/// with FF to 8 bytes).
pub fn reset_retry_counter_command(puk: &Pin, new_pin: &Pin) -> Command {
    let mut cmd = Command::new(ins::RESET_RETRY_COUNTER, 0x00, PIV_PIN);
    cmd.data.extend_from_slice(&puk.padded());
    cmd.data.extend_from_slice(&new_pin.padded());
    cmd
}

/// GET METADATA (YubiKey 5.3+): `00 F7 00 <reference> 00`.
pub fn metadata_command(reference: u8) -> Command {
    Command::new(ins::GET_METADATA, 0x00, reference).with_le(256)
}

/// ATTEST (YubiKey 4.3+): `00 F9 <slot> 00 00`; the answer is the DER certificate itself.
pub fn attest_command(slot: SlotId) -> Command {
    Command::new(ins::ATTEST, slot as u8, 0x00).with_le(256)
}

/// What GET METADATA tells about a reference (the fields we use).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Tag 01: the algorithm (FF for PIN and PUK).
    pub algorithm: Option<u8>,
    /// Tag 05: the factory default value is still set.
    pub is_default: Option<bool>,
    /// Tag 06: (total tries, tries left) of a PIN or PUK.
    pub tries: Option<(u8, u8)>,
}

/// Parses a GET METADATA answer: a flat list of TLVs.
pub fn parse_metadata(answer: &[u8]) -> Result<Metadata, PivError> {
    let mut out = Metadata::default();
    let mut rest = answer;
    while !rest.is_empty() {
        let (item, next) = tlv::read(rest)?;
        match (item.tag, item.value) {
            (0x01, [alg]) => out.algorithm = Some(*alg),
            (0x05, [flag]) => out.is_default = Some(*flag != 0),
            (0x06, [total, left]) => out.tries = Some((*total, *left)),
            _ => {}
        }
        rest = next;
    }
    Ok(out)
}

/// GENERAL AUTHENTICATE asking for a signature / raw private-key operation on `input`:
/// `00 87 <alg> <slot> Lc 7C L [82 00] [81 L <input>] 00`.
pub fn general_authenticate_command(alg: AlgorithmId, slot: SlotId, input: &[u8]) -> Command {
    let mut template = Vec::with_capacity(input.len() + 8);
    tlv::write(&mut template, 0x82, &[]);
    tlv::write(&mut template, 0x81, input);
    Command::new(ins::GENERAL_AUTHENTICATE, alg as u8, slot as u8)
        .with_data(tlv::encode(0x7C, &template))
        .with_le(256)
}

/// GENERATE ASYMMETRIC KEY PAIR: `00 47 00 <slot> 05 AC 03 80 01 <alg> 00`.
pub fn generate_command(alg: AlgorithmId, slot: SlotId) -> Command {
    Command::new(ins::GENERATE_ASYMMETRIC_KEY_PAIR, 0x00, slot as u8)
        .with_data(tlv::encode(0xAC, &tlv::encode(0x80, &[alg as u8])))
        .with_le(256)
}

/// PUT DATA: `00 DB 3F FF Lc 5C <len> <tag> <object as 53 L …>` (chained when long).
pub fn put_data_command(object: ObjectId, wrapped: &[u8]) -> Command {
    let mut data = tlv::encode(0x5C, object.tag());
    data.extend_from_slice(wrapped);
    Command::new(ins::PUT_DATA, 0x3F, 0xFF).with_data(data)
}

/// Wraps a DER certificate as a PIV certificate object: `53 L [70 L <DER>] [71 01 00] [FE 00]`
/// (CertInfo 00 = not compressed; empty error detection code).
pub fn wrap_certificate(der: &[u8]) -> Vec<u8> {
    let mut inner = Vec::with_capacity(der.len() + 12);
    tlv::write(&mut inner, 0x70, der);
    tlv::write(&mut inner, 0x71, &[0x00]);
    tlv::write(&mut inner, 0xFE, &[]);
    tlv::encode(0x53, &inner)
}

/// The DER certificate out of a GET DATA answer (`53 L [70 L <DER>] …`).
pub fn unwrap_certificate(object: &[u8]) -> Result<Vec<u8>, PivError> {
    let (outer, _) = tlv::read(object)?;
    if outer.tag != 0x53 {
        return Err(PivError::Malformed("证书对象缺少 53 标签"));
    }
    if let Some(info) = tlv::find(outer.value, 0x71)? {
        if info.first().is_some_and(|b| b & 0x01 != 0) {
            return Err(PivError::Malformed("不支持压缩的证书"));
        }
    }
    tlv::find(outer.value, 0x70)?
        .map(<[u8]>::to_vec)
        .ok_or(PivError::Malformed("证书对象缺少 70 标签"))
}

/// The signature out of a GENERAL AUTHENTICATE answer (`7C L [82 L <signature>]`).
pub fn parse_signature(answer: &[u8]) -> Result<Vec<u8>, PivError> {
    let (outer, _) = tlv::read(answer)?;
    if outer.tag != 0x7C {
        return Err(PivError::Malformed("签名应答缺少 7C 模板"));
    }
    tlv::find(outer.value, 0x82)?
        .map(<[u8]>::to_vec)
        .ok_or(PivError::Malformed("签名应答缺少 82 标签"))
}

/// The public key out of a GENERATE answer (`7F49 L [86 L point]` or `[81 n][82 e]`).
pub fn parse_public_key(alg: AlgorithmId, answer: &[u8]) -> Result<PublicKey, PivError> {
    let (outer, _) = tlv::read(answer)?;
    if outer.tag != 0x7F49 {
        return Err(PivError::Malformed("公钥应答缺少 7F49 模板"));
    }
    let missing = PivError::Malformed("公钥应答不完整");
    match alg {
        AlgorithmId::EccP256 => {
            let point = tlv::find(outer.value, 0x86)?.ok_or(missing)?;
            if point.len() != 65 || point[0] != 0x04 {
                return Err(PivError::Malformed("P-256 公钥点格式错误"));
            }
            Ok(PublicKey::EccP256 {
                point: point.to_vec(),
            })
        }
        AlgorithmId::Rsa2048 => {
            let modulus = tlv::find(outer.value, 0x81)?.ok_or(missing.clone())?;
            let exponent = tlv::find(outer.value, 0x82)?.ok_or(missing)?;
            Ok(PublicKey::Rsa {
                modulus: modulus.to_vec(),
                exponent: exponent.to_vec(),
            })
        }
    }
}

// ---- operations over a link ----

/// Selects the PIV application. A card without it answers 6A82.
pub fn select(card: &mut dyn Apdu) -> Result<(), PivError> {
    match card.exchange(&select_command())?.into_result() {
        Ok(_) => Ok(()),
        Err(PivError::NotFound) => Err(PivError::NoPivApplet),
        Err(e) => Err(e),
    }
}

/// Reads a data object as the card stores it (the `53 L …` wrapper included).
pub fn read_object(card: &mut dyn Apdu, object: ObjectId) -> Result<Vec<u8>, PivError> {
    card.exchange(&get_data_command(object))?.into_result()
}

/// The certificate in `slot` (DER), or `None` when the slot holds none.
pub fn read_certificate(card: &mut dyn Apdu, slot: SlotId) -> Result<Option<Vec<u8>>, PivError> {
    match read_object(card, slot.certificate_object()) {
        Ok(object) => unwrap_certificate(&object).map(Some),
        Err(PivError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The card's attestation of the key in `slot` (DER), or `None` when the card makes none: not
/// a YubiKey (6D00), an imported key or an empty slot (6A80, 6A86, 6A88, 6A82), or no
/// attestation key (6982, 6985).
pub fn attest(card: &mut dyn Apdu, slot: SlotId) -> Result<Option<Vec<u8>>, PivError> {
    match card.exchange(&attest_command(slot))?.into_result() {
        Ok(der) if der.first() == Some(&0x30) => Ok(Some(der)),
        Ok(_) => Err(PivError::Malformed("密钥证明应答不是证书")),
        Err(PivError::Refused(sw) | PivError::Unexpected(sw))
            if matches!(sw.0, 0x6D00 | 0x6A80 | 0x6A86 | 0x6A88 | 0x6985 | 0x6B00) =>
        {
            Ok(None)
        }
        Err(PivError::NotFound) | Err(PivError::SecurityStatusNotSatisfied) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The certificate of the card's attestation key (object 5FFF01, DER), or `None`.
pub fn read_attestation_certificate(card: &mut dyn Apdu) -> Result<Option<Vec<u8>>, PivError> {
    match read_object(card, ObjectId::AttestationCertificate) {
        Ok(object) => unwrap_certificate(&object).map(Some),
        Err(PivError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads the PIN state without spending a try (an empty VERIFY).
pub fn pin_status(card: &mut dyn Apdu) -> Result<PinStatus, PivError> {
    let response = card.exchange(&verify_command(None))?;
    match response.into_result() {
        Ok(_) => Ok(PinStatus::Verified),
        Err(PivError::WrongPin { tries_left: 0 }) | Err(PivError::PinBlocked) => {
            Ok(PinStatus::Blocked)
        }
        Err(PivError::WrongPin { tries_left }) => Ok(PinStatus::TriesLeft(tries_left)),
        Err(e) => Err(e),
    }
}

/// Verifies the PIN. A wrong PIN is `WrongPin { tries_left }`; the last wrong try and any try
/// on a blocked card are `PinBlocked`.
pub fn verify_pin(card: &mut dyn Apdu, pin: &Pin) -> Result<(), PivError> {
    match card.exchange(&verify_command(Some(pin)))?.into_result() {
        Ok(_) => Ok(()),
        Err(PivError::WrongPin { tries_left: 0 }) => Err(PivError::PinBlocked),
        Err(e) => Err(e),
    }
}

/// GET METADATA of `reference`; `None` when the card does not know the command (6D00, as any
/// card that is not a YubiKey 5.3+) or the reference (6A81, 6A86, 6A88).
pub fn metadata(card: &mut dyn Apdu, reference: u8) -> Result<Option<Metadata>, PivError> {
    match card.exchange(&metadata_command(reference))?.into_result() {
        Ok(answer) => parse_metadata(&answer).map(Some),
        Err(PivError::Refused(sw)) if matches!(sw.0, 0x6D00 | 0x6A81 | 0x6A86 | 0x6A88) => Ok(None),
        Err(PivError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The PUK's tries left, when the card tells (GET METADATA); `None` when it does not.
pub fn puk_status(card: &mut dyn Apdu) -> Result<Option<PinStatus>, PivError> {
    Ok(metadata(card, PIV_PUK)?
        .and_then(|m| m.tries)
        .map(|(_, left)| match left {
            0 => PinStatus::Blocked,
            n => PinStatus::TriesLeft(n),
        }))
}

/// Changes the PIN. A wrong current PIN is `WrongPin { tries_left }` (the last one
/// `PinBlocked`), as for VERIFY.
pub fn change_pin(card: &mut dyn Apdu, old: &Pin, new: &Pin) -> Result<(), PivError> {
    match card
        .exchange(&change_reference_command(PIV_PIN, old, new))?
        .into_result()
    {
        Ok(_) => Ok(()),
        Err(PivError::WrongPin { tries_left: 0 }) => Err(PivError::PinBlocked),
        Err(e) => Err(e),
    }
}

/// The card's PIN-counter answers to a PUK command, as PUK errors.
fn as_puk_error(e: PivError) -> PivError {
    match e {
        PivError::WrongPin { tries_left: 0 } | PivError::PinBlocked => PivError::PukBlocked,
        PivError::WrongPin { tries_left } => PivError::WrongPuk { tries_left },
        other => other,
    }
}

/// Changes the PUK. A wrong current PUK is `WrongPuk { tries_left }`, the last one
/// `PukBlocked`.
pub fn change_puk(card: &mut dyn Apdu, old: &Pin, new: &Pin) -> Result<(), PivError> {
    card.exchange(&change_reference_command(PIV_PUK, old, new))?
        .into_result()
        .map(|_| ())
        .map_err(as_puk_error)
}

/// Unblocks the PIN with the PUK and sets `new_pin` (its counter back to full). A wrong PUK is
/// `WrongPuk { tries_left }`, the last one and any try on a blocked PUK `PukBlocked`.
pub fn unblock_pin(card: &mut dyn Apdu, puk: &Pin, new_pin: &Pin) -> Result<(), PivError> {
    card.exchange(&reset_retry_counter_command(puk, new_pin))?
        .into_result()
        .map(|_| ())
        .map_err(as_puk_error)
}

/// Ends the PIN's verified state on the card (`00 20 FF 80`), so a finished command does not
/// leave the key unlocked for other programs.
pub fn logout(card: &mut dyn Apdu) -> Result<(), PivError> {
    let mut cmd = verify_command(None);
    cmd.p1 = 0xFF;
    card.exchange(&cmd)?.into_result().map(|_| ())
}

/// The private-key operation of `slot`: an ECDSA P-256 signature (DER) over a 32-byte digest,
/// or the raw RSA-2048 operation on a 256-byte block that the host has already padded.
pub fn sign(
    card: &mut dyn Apdu,
    alg: AlgorithmId,
    slot: SlotId,
    input: &[u8],
) -> Result<Vec<u8>, PivError> {
    if input.len() != alg.input_len() {
        return Err(PivError::Malformed("签名输入长度与算法不符"));
    }
    let answer = card
        .exchange(&general_authenticate_command(alg, slot, input))?
        .into_result()?;
    parse_signature(&answer)
}

/// 6982 from a command that needs the management key says so.
fn needs_management_key(e: PivError) -> PivError {
    match e {
        PivError::SecurityStatusNotSatisfied => PivError::ManagementKeyRequired,
        other => other,
    }
}

/// Generates a key pair in `slot`; the private key stays on the card. The card wants the 9B
/// management key first (`mgmt::authenticate`); without it this is `ManagementKeyRequired`.
pub fn generate(
    card: &mut dyn Apdu,
    alg: AlgorithmId,
    slot: SlotId,
) -> Result<PublicKey, PivError> {
    let answer = card
        .exchange(&generate_command(alg, slot))?
        .into_result()
        .map_err(needs_management_key)?;
    parse_public_key(alg, &answer)
}

/// Writes a DER certificate into the slot's certificate object (after the 9B management key,
/// as `generate`).
pub fn write_certificate(card: &mut dyn Apdu, slot: SlotId, der: &[u8]) -> Result<(), PivError> {
    let cmd = put_data_command(slot.certificate_object(), &wrap_certificate(der));
    card.exchange(&cmd)?
        .into_result()
        .map(|_| ())
        .map_err(needs_management_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apdu::StatusWord;

    #[test]
    fn ids_convert_both_ways() {
        for slot in [
            SlotId::Authentication,
            SlotId::Signature,
            SlotId::KeyManagement,
            SlotId::CardAuthentication,
        ] {
            assert_eq!(SlotId::try_from(slot as u8).unwrap(), slot);
            assert_eq!(slot.to_string().parse::<SlotId>().unwrap(), slot);
        }
        assert_eq!(SlotId::Authentication.to_string(), "9A");
        assert!(SlotId::try_from(0x9B).is_err());
        assert_eq!(AlgorithmId::try_from(0x11).unwrap(), AlgorithmId::EccP256);
        assert_eq!(AlgorithmId::try_from(0x07).unwrap(), AlgorithmId::Rsa2048);
        assert_eq!("p256".parse::<AlgorithmId>().unwrap(), AlgorithmId::EccP256);
        assert!(AlgorithmId::try_from(0x14).is_err());
        assert_eq!(
            SlotId::Authentication.certificate_object().tag(),
            [0x5F, 0xC1, 0x05]
        );
    }

    #[test]
    fn commands_encode_byte_for_byte() {
        assert_eq!(
            &*select_command().encode(),
            &[
                0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00,
                0x00
            ]
        );
        assert_eq!(
            &*get_data_command(ObjectId::Chuid).encode(),
            &[0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x02, 0x00]
        );
        assert_eq!(
            &*get_data_command(ObjectId::Discovery).encode(),
            &[0x00, 0xCB, 0x3F, 0xFF, 0x03, 0x5C, 0x01, 0x7E, 0x00]
        );
        assert_eq!(&*verify_command(None).encode(), &[0x00, 0x20, 0x00, 0x80]);
        assert_eq!(
            &*generate_command(AlgorithmId::EccP256, SlotId::Authentication).encode(),
            &[0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11, 0x00]
        );
        assert_eq!(
            &*generate_command(AlgorithmId::Rsa2048, SlotId::Signature).encode(),
            &[0x00, 0x47, 0x00, 0x9C, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x07, 0x00]
        );
        let digest = [0x5A; 32];
        let ga =
            general_authenticate_command(AlgorithmId::EccP256, SlotId::Authentication, &digest);
        let mut expected = vec![
            0x00, 0x87, 0x11, 0x9A, 0x26, 0x7C, 0x24, 0x82, 0x00, 0x81, 0x20,
        ];
        expected.extend_from_slice(&digest);
        expected.push(0x00);
        assert_eq!(&*ga.encode(), &expected[..]);
    }

    #[test]
    fn rsa_general_authenticate_uses_long_lengths_and_chains() {
        let block = [0x01; 256];
        let ga = general_authenticate_command(AlgorithmId::Rsa2048, SlotId::Authentication, &block);
        // 7C 82 01 06 [82 00] [81 82 01 00 <256>]
        assert_eq!(
            &ga.data[..10],
            &[0x7C, 0x82, 0x01, 0x06, 0x82, 0x00, 0x81, 0x82, 0x01, 0x00]
        );
        assert_eq!(ga.data.len(), 4 + 2 + 4 + 256);
        let parts = ga.chain();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].cla, 0x10);
        assert_eq!(parts[0].le, None);
        assert_eq!(parts[1].cla, 0x00);
        assert_eq!(parts[1].le, Some(256));
    }

    #[test]
    fn certificate_objects_wrap_and_unwrap() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x05];
        let wrapped = wrap_certificate(&der);
        assert_eq!(
            wrapped,
            [0x53, 0x0C, 0x70, 0x05, 0x30, 0x03, 0x02, 0x01, 0x05, 0x71, 0x01, 0x00, 0xFE, 0x00]
        );
        assert_eq!(unwrap_certificate(&wrapped).unwrap(), der);

        let big = vec![0x30; 700];
        let wrapped = wrap_certificate(&big);
        // 53 82 02 C5 | 70 82 02 BC <700> | 71 01 00 | FE 00
        assert_eq!(
            &wrapped[..8],
            &[0x53, 0x82, 0x02, 0xC5, 0x70, 0x82, 0x02, 0xBC]
        );
        assert_eq!(
            &wrapped[wrapped.len() - 5..],
            &[0x71, 0x01, 0x00, 0xFE, 0x00]
        );
        assert_eq!(unwrap_certificate(&wrapped).unwrap(), big);

        let put = put_data_command(ObjectId::CertAuthentication, &wrap_certificate(&der));
        assert_eq!(
            &*put.encode(),
            &[
                0x00, 0xDB, 0x3F, 0xFF, 0x13, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x53, 0x0C, 0x70, 0x05,
                0x30, 0x03, 0x02, 0x01, 0x05, 0x71, 0x01, 0x00, 0xFE, 0x00
            ]
        );

        assert!(unwrap_certificate(&[0x53, 0x03, 0x71, 0x01, 0x01]).is_err());
        assert!(unwrap_certificate(&[0x54, 0x00]).is_err());
    }

    #[test]
    fn answers_parse() {
        let sig = parse_signature(&[0x7C, 0x05, 0x82, 0x03, 0x30, 0x01, 0x00]).unwrap();
        assert_eq!(sig, [0x30, 0x01, 0x00]);
        assert!(parse_signature(&[0x7D, 0x00]).is_err());

        let mut answer = vec![0x7F, 0x49, 0x43, 0x86, 0x41, 0x04];
        answer.extend([7; 64]);
        match parse_public_key(AlgorithmId::EccP256, &answer).unwrap() {
            PublicKey::EccP256 { point } => assert_eq!(point.len(), 65),
            other => panic!("{other:?}"),
        }
        let mut rsa = vec![0x7F, 0x49, 0x82, 0x01, 0x09, 0x81, 0x82, 0x01, 0x00];
        rsa.extend([0xC5; 256]);
        rsa.extend([0x82, 0x03, 0x01, 0x00, 0x01]);
        match parse_public_key(AlgorithmId::Rsa2048, &rsa).unwrap() {
            PublicKey::Rsa { modulus, exponent } => {
                assert_eq!(modulus.len(), 256);
                assert_eq!(exponent, [1, 0, 1]);
            }
            other => panic!("{other:?}"),
        }
    }

    /// A card double answering from a fixed list of (expected command, response) pairs.
    struct Scripted(Vec<(Vec<u8>, Response)>);

    impl Apdu for Scripted {
        fn exchange(&mut self, cmd: &Command) -> Result<Response, PivError> {
            let (expected, response) = self.0.remove(0);
            assert_eq!(&*cmd.encode(), &expected[..]);
            Ok(response)
        }
    }

    fn sw(code: u16) -> Response {
        Response {
            data: vec![],
            sw: StatusWord(code),
        }
    }

    #[test]
    fn pin_status_and_verify_explain_the_counter() {
        let empty = verify_command(None).encode().to_vec();
        let pin = Pin::new("123456").unwrap();
        let full = verify_command(Some(&pin)).encode().to_vec();
        let mut card = Scripted(vec![
            (empty.clone(), sw(0x63C3)),
            (full.clone(), sw(0x63C2)),
            (full.clone(), sw(0x63C0)),
            (empty.clone(), sw(0x6983)),
            (full.clone(), sw(0x9000)),
            (empty, sw(0x9000)),
        ]);
        assert_eq!(pin_status(&mut card).unwrap(), PinStatus::TriesLeft(3));
        assert_eq!(
            verify_pin(&mut card, &pin).unwrap_err(),
            PivError::WrongPin { tries_left: 2 }
        );
        assert_eq!(
            verify_pin(&mut card, &pin).unwrap_err(),
            PivError::PinBlocked
        );
        assert_eq!(pin_status(&mut card).unwrap(), PinStatus::Blocked);
        verify_pin(&mut card, &pin).unwrap();
        assert_eq!(pin_status(&mut card).unwrap(), PinStatus::Verified);
    }

    #[test]
    fn pin_management_commands_encode_byte_for_byte() {
        let old = Pin::new("123456").unwrap();
        let new = Pin::new("2468ace0").unwrap();
        assert_eq!(
            &*change_reference_command(PIV_PIN, &old, &new).encode(),
            &[
                0x00, 0x24, 0x00, 0x80, 0x10, b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF, b'2',
                b'4', b'6', b'8', b'a', b'c', b'e', b'0'
            ]
        );
        let puk = Pin::puk("12345678").unwrap();
        let new_puk = Pin::puk("8765432").unwrap();
        assert_eq!(
            &*change_reference_command(PIV_PUK, &puk, &new_puk).encode(),
            &[
                0x00, 0x24, 0x00, 0x81, 0x10, b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8', b'8',
                b'7', b'6', b'5', b'4', b'3', b'2', 0xFF
            ]
        );
        assert_eq!(
            &*reset_retry_counter_command(&puk, &old).encode(),
            &[
                0x00, 0x2C, 0x00, 0x80, 0x10, b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8', b'1',
                b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF
            ]
        );
        assert_eq!(
            &*metadata_command(MANAGEMENT_KEY).encode(),
            &[0x00, 0xF7, 0x00, 0x9B, 0x00]
        );
        assert_eq!(
            &*metadata_command(PIV_PUK).encode(),
            &[0x00, 0xF7, 0x00, 0x81, 0x00]
        );
        // The PINs never reach Debug.
        let printed = format!("{:?}", reset_retry_counter_command(&puk, &old));
        assert!(!printed.contains("3132"), "{printed}");
    }

    #[test]
    fn pin_management_explains_the_counters() {
        let old = Pin::new("123456").unwrap();
        let new = Pin::new("654321").unwrap();
        let puk = Pin::puk("12345678").unwrap();
        let change = change_reference_command(PIV_PIN, &old, &new)
            .encode()
            .to_vec();
        let change_puk_cmd = change_reference_command(PIV_PUK, &puk, &puk)
            .encode()
            .to_vec();
        let unblock = reset_retry_counter_command(&puk, &new).encode().to_vec();
        let mut card = Scripted(vec![
            (change.clone(), sw(0x63C2)),
            (change.clone(), sw(0x63C0)),
            (change, sw(0x9000)),
            (unblock.clone(), sw(0x63C1)),
            (unblock.clone(), sw(0x63C0)),
            (unblock.clone(), sw(0x6983)),
            (unblock, sw(0x9000)),
            (change_puk_cmd.clone(), sw(0x63C2)),
            (change_puk_cmd, sw(0x9000)),
        ]);
        assert_eq!(
            change_pin(&mut card, &old, &new).unwrap_err(),
            PivError::WrongPin { tries_left: 2 }
        );
        assert_eq!(
            change_pin(&mut card, &old, &new).unwrap_err(),
            PivError::PinBlocked
        );
        change_pin(&mut card, &old, &new).unwrap();
        assert_eq!(
            unblock_pin(&mut card, &puk, &new).unwrap_err(),
            PivError::WrongPuk { tries_left: 1 }
        );
        assert_eq!(
            unblock_pin(&mut card, &puk, &new).unwrap_err(),
            PivError::PukBlocked
        );
        assert_eq!(
            unblock_pin(&mut card, &puk, &new).unwrap_err(),
            PivError::PukBlocked
        );
        unblock_pin(&mut card, &puk, &new).unwrap();
        assert_eq!(
            change_puk(&mut card, &puk, &puk).unwrap_err(),
            PivError::WrongPuk { tries_left: 2 }
        );
        change_puk(&mut card, &puk, &puk).unwrap();
    }

    #[test]
    fn metadata_parses_and_missing_support_is_none() {
        let answer = [0x01, 0x01, 0xFF, 0x05, 0x01, 0x01, 0x06, 0x02, 0x03, 0x02];
        let meta = parse_metadata(&answer).unwrap();
        assert_eq!(meta.algorithm, Some(0xFF));
        assert_eq!(meta.is_default, Some(true));
        assert_eq!(meta.tries, Some((3, 2)));
        let cmd = metadata_command(PIV_PUK).encode().to_vec();
        let mut card = Scripted(vec![
            (
                cmd.clone(),
                Response {
                    data: answer.to_vec(),
                    sw: StatusWord(0x9000),
                },
            ),
            (cmd.clone(), sw(0x6D00)),
            (
                cmd,
                Response {
                    data: vec![0x01, 0x01, 0xFF, 0x06, 0x02, 0x03, 0x00],
                    sw: StatusWord(0x9000),
                },
            ),
        ]);
        assert_eq!(
            puk_status(&mut card).unwrap(),
            Some(PinStatus::TriesLeft(2))
        );
        assert_eq!(puk_status(&mut card).unwrap(), None);
        assert_eq!(puk_status(&mut card).unwrap(), Some(PinStatus::Blocked));
    }

    #[test]
    fn generate_and_put_data_name_the_management_key() {
        let mut card = Scripted(vec![
            (
                generate_command(AlgorithmId::EccP256, SlotId::Authentication)
                    .encode()
                    .to_vec(),
                sw(0x6982),
            ),
            (
                put_data_command(ObjectId::CertAuthentication, &wrap_certificate(&[0x30, 0]))
                    .encode()
                    .to_vec(),
                sw(0x6982),
            ),
        ]);
        assert_eq!(
            generate(&mut card, AlgorithmId::EccP256, SlotId::Authentication).unwrap_err(),
            PivError::ManagementKeyRequired
        );
        assert_eq!(
            write_certificate(&mut card, SlotId::Authentication, &[0x30, 0]).unwrap_err(),
            PivError::ManagementKeyRequired
        );
    }

    #[test]
    fn missing_application_and_certificate_are_named() {
        let mut card = Scripted(vec![
            (select_command().encode().to_vec(), sw(0x6A82)),
            (
                get_data_command(ObjectId::CertAuthentication)
                    .encode()
                    .to_vec(),
                sw(0x6A82),
            ),
        ]);
        assert_eq!(select(&mut card).unwrap_err(), PivError::NoPivApplet);
        assert_eq!(
            read_certificate(&mut card, SlotId::Authentication).unwrap(),
            None
        );
    }

    #[test]
    fn attestation_is_read_when_the_card_makes_one() {
        assert_eq!(
            &*attest_command(SlotId::Authentication).encode(),
            &[0x00, 0xF9, 0x9A, 0x00, 0x00]
        );
        assert_eq!(
            &*get_data_command(ObjectId::AttestationCertificate).encode(),
            &[0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xFF, 0x01, 0x00]
        );
        let attest_cmd = attest_command(SlotId::Authentication).encode().to_vec();
        let read = get_data_command(ObjectId::AttestationCertificate)
            .encode()
            .to_vec();
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x07];
        let mut card = Scripted(vec![
            (
                attest_cmd.clone(),
                Response {
                    data: der.clone(),
                    sw: StatusWord(0x9000),
                },
            ),
            (
                read.clone(),
                Response {
                    data: wrap_certificate(&der),
                    sw: StatusWord(0x9000),
                },
            ),
            (attest_cmd.clone(), sw(0x6D00)),
            (attest_cmd.clone(), sw(0x6A80)),
            (read, sw(0x6A82)),
            (
                attest_cmd,
                Response {
                    data: vec![0x53, 0x00],
                    sw: StatusWord(0x9000),
                },
            ),
        ]);
        assert_eq!(
            attest(&mut card, SlotId::Authentication).unwrap(),
            Some(der.clone())
        );
        assert_eq!(read_attestation_certificate(&mut card).unwrap(), Some(der));
        assert_eq!(attest(&mut card, SlotId::Authentication).unwrap(), None);
        assert_eq!(attest(&mut card, SlotId::Authentication).unwrap(), None);
        assert_eq!(read_attestation_certificate(&mut card).unwrap(), None);
        assert!(attest(&mut card, SlotId::Authentication).is_err());
    }

    #[test]
    fn sign_refuses_the_wrong_input_length() {
        let mut card = Scripted(vec![]);
        assert!(sign(
            &mut card,
            AlgorithmId::EccP256,
            SlotId::Authentication,
            &[0; 31]
        )
        .is_err());
        assert!(sign(
            &mut card,
            AlgorithmId::Rsa2048,
            SlotId::Authentication,
            &[0; 32]
        )
        .is_err());
    }
}
