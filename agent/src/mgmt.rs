//! The card management key (slot 9B, SP 800-73-4 part 2 appendix A.1 and SP 800-78-4): a real
//! PIV card wants it before GENERATE ASYMMETRIC KEY PAIR and PUT DATA. Mutual authentication by
//! GENERAL AUTHENTICATE with a witness and a challenge:
//!
//! 1. the host asks for a witness: `7C 02 80 00`;
//! 2. the card answers `7C L 80 n <witness encrypted under the key>`;
//! 3. the host decrypts it and answers `7C L 80 n <witness> 81 n <challenge>`;
//! 4. the card checks the witness and answers `7C L 82 n <challenge encrypted>`, which the host
//!    checks — so each side proves it holds the key.
//!
//! n is the cipher's block: 8 for 3DES (algorithm 03), 16 for AES-128/192/256 (08, 0A, 0C).
//! Only single-block ECB operations are needed, from the RustCrypto `des` and `aes` crates.
//! Command builders and answer parsers are pure; `authenticate_with` runs over any `Apdu` link.

use std::fmt;
use std::str::FromStr;

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use zeroize::Zeroizing;

use crate::apdu::Command;
use crate::error::PivError;
use crate::piv::{self, ins, Apdu, MANAGEMENT_KEY};
use crate::tlv;

/// The factory default management key of PIV cards and YubiKeys (3DES; AES-192 on YubiKeys
/// from 5.7).
pub const DEFAULT_KEY: [u8; 24] = [
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
];

/// A management-key algorithm (SP 800-78-4 table 6-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MgmtAlgorithm {
    /// 03 — three-key triple DES (EDE).
    Tdes = 0x03,
    /// 08 — AES-128.
    Aes128 = 0x08,
    /// 0A — AES-192.
    Aes192 = 0x0A,
    /// 0C — AES-256.
    Aes256 = 0x0C,
}

impl MgmtAlgorithm {
    /// The key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Tdes | Self::Aes192 => 24,
            Self::Aes128 => 16,
            Self::Aes256 => 32,
        }
    }

    /// The cipher's block length: the witness and challenge length.
    pub fn block_len(self) -> usize {
        match self {
            Self::Tdes => 8,
            _ => 16,
        }
    }

    /// The name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tdes => "3DES",
            Self::Aes128 => "AES-128",
            Self::Aes192 => "AES-192",
            Self::Aes256 => "AES-256",
        }
    }
}

impl TryFrom<u8> for MgmtAlgorithm {
    type Error = PivError;
    fn try_from(b: u8) -> Result<Self, PivError> {
        match b {
            0x03 => Ok(Self::Tdes),
            0x08 => Ok(Self::Aes128),
            0x0A => Ok(Self::Aes192),
            0x0C => Ok(Self::Aes256),
            _ => Err(PivError::Malformed("不支持的管理密钥算法")),
        }
    }
}

impl FromStr for MgmtAlgorithm {
    type Err = PivError;
    fn from_str(s: &str) -> Result<Self, PivError> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "3des" | "tdes" | "03" => Ok(Self::Tdes),
            "aes128" | "08" => Ok(Self::Aes128),
            "aes192" | "0a" => Ok(Self::Aes192),
            "aes256" | "0c" => Ok(Self::Aes256),
            _ => Err(PivError::Malformed(
                "管理密钥算法应为 3des、aes128、aes192 或 aes256",
            )),
        }
    }
}

impl fmt::Display for MgmtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A management key: its algorithm and the key bytes, wiped on drop, never printed.
pub struct MgmtKey {
    alg: MgmtAlgorithm,
    key: Zeroizing<Vec<u8>>,
}

impl MgmtKey {
    /// The key from raw bytes; refuses a length that does not fit the algorithm.
    pub fn new(alg: MgmtAlgorithm, key: &[u8]) -> Result<Self, PivError> {
        if key.len() != alg.key_len() {
            return Err(PivError::ManagementKeyFormat(alg.key_len()));
        }
        Ok(Self {
            alg,
            key: Zeroizing::new(key.to_vec()),
        })
    }

    /// The key from hex text (spaces and colons allowed between bytes).
    pub fn from_hex(alg: MgmtAlgorithm, text: &str) -> Result<Self, PivError> {
        let digits: Zeroizing<Vec<u8>> = Zeroizing::new(
            text.bytes()
                .filter(|b| !matches!(b, b' ' | b':' | b'\t'))
                .collect(),
        );
        let bad = PivError::ManagementKeyFormat(alg.key_len());
        if digits.len() % 2 != 0 {
            return Err(bad);
        }
        let mut key = Zeroizing::new(Vec::with_capacity(digits.len() / 2));
        for pair in digits.chunks(2) {
            let hi = (pair[0] as char).to_digit(16).ok_or(bad.clone())?;
            let lo = (pair[1] as char).to_digit(16).ok_or(bad.clone())?;
            key.push((hi * 16 + lo) as u8);
        }
        Self::new(alg, &key)
    }

    /// The factory default key for `alg` (3DES or AES-192; the other AES sizes have none).
    pub fn default_for(alg: MgmtAlgorithm) -> Result<Self, PivError> {
        Self::new(alg, &DEFAULT_KEY)
    }

    pub fn algorithm(&self) -> MgmtAlgorithm {
        self.alg
    }

    /// Encrypts one block in place (ECB, as the protocol needs).
    pub fn encrypt_block(&self, block: &mut [u8]) -> Result<(), PivError> {
        self.block_op(block, true)
    }

    /// Decrypts one block in place.
    pub fn decrypt_block(&self, block: &mut [u8]) -> Result<(), PivError> {
        self.block_op(block, false)
    }

    fn block_op(&self, block: &mut [u8], encrypt: bool) -> Result<(), PivError> {
        if block.len() != self.alg.block_len() {
            return Err(PivError::Malformed("管理密钥认证数据长度与算法不符"));
        }
        let bad_key = || PivError::ManagementKeyFormat(self.alg.key_len());
        macro_rules! run {
            ($cipher:ty) => {{
                let c = <$cipher>::new_from_slice(&self.key).map_err(|_| bad_key())?;
                let block = GenericArray::from_mut_slice(block);
                if encrypt {
                    c.encrypt_block(block)
                } else {
                    c.decrypt_block(block)
                }
            }};
        }
        match self.alg {
            MgmtAlgorithm::Tdes => run!(des::TdesEde3),
            MgmtAlgorithm::Aes128 => run!(aes::Aes128),
            MgmtAlgorithm::Aes192 => run!(aes::Aes192),
            MgmtAlgorithm::Aes256 => run!(aes::Aes256),
        }
        Ok(())
    }
}

impl fmt::Debug for MgmtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MgmtKey({}, <hidden>)", self.alg)
    }
}

// ---- command builders and parsers (pure) ----

/// Step 1, the witness request: `00 87 <alg> 9B 04 7C 02 80 00 00`.
pub fn witness_request_command(alg: MgmtAlgorithm) -> Command {
    Command::new(ins::GENERAL_AUTHENTICATE, alg as u8, MANAGEMENT_KEY)
        .with_data(tlv::encode(0x7C, &tlv::encode(0x80, &[])))
        .with_le(256)
}

/// Step 3, the decrypted witness and our challenge:
/// `00 87 <alg> 9B Lc 7C L [80 n <witness>] [81 n <challenge>] 00`.
pub fn mutual_auth_command(alg: MgmtAlgorithm, witness: &[u8], challenge: &[u8]) -> Command {
    let mut template = Vec::with_capacity(4 + witness.len() + challenge.len());
    tlv::write(&mut template, 0x80, witness);
    tlv::write(&mut template, 0x81, challenge);
    Command::new(ins::GENERAL_AUTHENTICATE, alg as u8, MANAGEMENT_KEY)
        .with_data(tlv::encode(0x7C, &template))
        .with_le(256)
}

/// The value of `tag` inside the card's `7C` answer, of exactly `len` bytes.
pub fn parse_template(answer: &[u8], tag: u32, len: usize) -> Result<Vec<u8>, PivError> {
    let (outer, _) = tlv::read(answer)?;
    if outer.tag != 0x7C {
        return Err(PivError::Malformed("管理密钥应答缺少 7C 模板"));
    }
    match tlv::find(outer.value, tag)? {
        Some(value) if value.len() == len => Ok(value.to_vec()),
        Some(_) => Err(PivError::Malformed("管理密钥应答长度与算法不符")),
        None => Err(PivError::Malformed("管理密钥应答不完整")),
    }
}

// ---- operations over a link ----

/// The algorithm of the card's management key: asked with GET METADATA (YubiKey 5.3+), 3DES
/// when the card does not know the command (6D00) or the reference (6A81).
pub fn card_algorithm(card: &mut dyn Apdu) -> Result<MgmtAlgorithm, PivError> {
    match piv::metadata(card, MANAGEMENT_KEY)? {
        Some(meta) => match meta.algorithm {
            Some(alg) => MgmtAlgorithm::try_from(alg),
            None => Ok(MgmtAlgorithm::Tdes),
        },
        None => Ok(MgmtAlgorithm::Tdes),
    }
}

/// Mutual authentication with `key`, our `challenge` given (one block of fresh randomness;
/// `authenticate` draws it). Afterwards the card accepts GENERATE and PUT DATA until the PIV
/// application is selected again or the card is reset.
pub fn authenticate_with(
    card: &mut dyn Apdu,
    key: &MgmtKey,
    challenge: &[u8],
) -> Result<(), PivError> {
    let alg = key.algorithm();
    let n = alg.block_len();
    if challenge.len() != n {
        return Err(PivError::Malformed("管理密钥挑战长度与算法不符"));
    }
    let answer = match card.exchange(&witness_request_command(alg))?.into_result() {
        Ok(answer) => answer,
        Err(PivError::Refused(sw)) if matches!(sw.0, 0x6A80 | 0x6A86) => {
            return Err(PivError::ManagementKeyAlgorithm(alg.name()))
        }
        Err(e) => return Err(e),
    };
    let mut witness = Zeroizing::new(parse_template(&answer, 0x80, n)?);
    key.decrypt_block(&mut witness)?;
    let answer = match card
        .exchange(&mutual_auth_command(alg, &witness, challenge))?
        .into_result()
    {
        Ok(answer) => answer,
        Err(PivError::SecurityStatusNotSatisfied | PivError::Refused(_)) => {
            return Err(PivError::WrongManagementKey)
        }
        Err(e) => return Err(e),
    };
    let response = parse_template(&answer, 0x82, n)?;
    let mut expected = challenge.to_vec();
    key.encrypt_block(&mut expected)?;
    if response != expected {
        return Err(PivError::ManagementKeyChallenge);
    }
    Ok(())
}

/// Mutual authentication with `key` and a fresh random challenge.
pub fn authenticate(card: &mut dyn Apdu, key: &MgmtKey) -> Result<(), PivError> {
    use ring::rand::SecureRandom;
    let mut challenge = vec![0u8; key.algorithm().block_len()];
    ring::rand::SystemRandom::new()
        .fill(&mut challenge)
        .map_err(|_| PivError::Malformed("系统随机数不可用"))?;
    authenticate_with(card, key, &challenge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apdu::{Response, StatusWord};

    /// A card double answering from a fixed list of (expected command, response) pairs.
    struct Scripted(Vec<(Vec<u8>, Vec<u8>, u16)>);

    impl Apdu for Scripted {
        fn exchange(&mut self, cmd: &Command) -> Result<Response, PivError> {
            let (expected, data, sw) = self.0.remove(0);
            assert_eq!(&*cmd.encode(), &expected[..]);
            Ok(Response {
                data,
                sw: StatusWord(sw),
            })
        }
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn block_ciphers_match_the_standard_vectors() {
        // FIPS 197 appendix C.1-C.3.
        let plain = hex("00112233445566778899aabbccddeeff");
        for (alg, key, cipher) in [
            (
                MgmtAlgorithm::Aes128,
                "000102030405060708090a0b0c0d0e0f",
                "69c4e0d86a7b0430d8cdb78070b4c55a",
            ),
            (
                MgmtAlgorithm::Aes192,
                "000102030405060708090a0b0c0d0e0f1011121314151617",
                "dda97ca4864cdfe06eaf70a0ec0d7191",
            ),
            (
                MgmtAlgorithm::Aes256,
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "8ea2b7ca516745bfeafc49904b496089",
            ),
        ] {
            let key = MgmtKey::from_hex(alg, key).unwrap();
            let mut block = plain.clone();
            key.encrypt_block(&mut block).unwrap();
            assert_eq!(block, hex(cipher), "{alg}");
            key.decrypt_block(&mut block).unwrap();
            assert_eq!(block, plain);
        }
        // Three equal DES keys make single DES: the classic vector 0123456789ABCDEF /
        // 4E6F772069732074 ("Now is t") → 3FA40E8A984D4815.
        let des = MgmtKey::from_hex(MgmtAlgorithm::Tdes, &"0123456789abcdef".repeat(3)).unwrap();
        let mut block = hex("4e6f772069732074");
        des.encrypt_block(&mut block).unwrap();
        assert_eq!(block, hex("3fa40e8a984d4815"));
        des.decrypt_block(&mut block).unwrap();
        assert_eq!(block, hex("4e6f772069732074"));
    }

    #[test]
    fn keys_parse_and_never_print() {
        let key = MgmtKey::from_hex(
            MgmtAlgorithm::Tdes,
            "010203040506070801020304050607080102030405060708",
        )
        .unwrap();
        assert_eq!(&*key.key, &DEFAULT_KEY);
        assert_eq!(format!("{key:?}"), "MgmtKey(3DES, <hidden>)");
        assert_eq!(
            MgmtKey::from_hex(MgmtAlgorithm::Aes256, "0102").unwrap_err(),
            PivError::ManagementKeyFormat(32)
        );
        assert!(MgmtKey::from_hex(MgmtAlgorithm::Aes128, &"zz".repeat(16)).is_err());
        assert!(MgmtKey::default_for(MgmtAlgorithm::Aes192).is_ok());
        assert!(MgmtKey::default_for(MgmtAlgorithm::Aes128).is_err());
        for (text, alg) in [
            ("3des", MgmtAlgorithm::Tdes),
            ("AES128", MgmtAlgorithm::Aes128),
            ("aes-192", MgmtAlgorithm::Aes192),
            ("aes256", MgmtAlgorithm::Aes256),
        ] {
            assert_eq!(text.parse::<MgmtAlgorithm>().unwrap(), alg);
            assert_eq!(MgmtAlgorithm::try_from(alg as u8).unwrap(), alg);
        }
        assert!("rsa".parse::<MgmtAlgorithm>().is_err());
    }

    #[test]
    fn commands_encode_byte_for_byte() {
        assert_eq!(
            &*witness_request_command(MgmtAlgorithm::Tdes).encode(),
            &[0x00, 0x87, 0x03, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00, 0x00]
        );
        assert_eq!(
            &*witness_request_command(MgmtAlgorithm::Aes256).encode(),
            &[0x00, 0x87, 0x0C, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00, 0x00]
        );
        let w = [0x11; 8];
        let c = [0x22; 8];
        let mut expected = vec![0x00, 0x87, 0x03, 0x9B, 0x16, 0x7C, 0x14, 0x80, 0x08];
        expected.extend(w);
        expected.extend([0x81, 0x08]);
        expected.extend(c);
        expected.push(0x00);
        assert_eq!(
            &*mutual_auth_command(MgmtAlgorithm::Tdes, &w, &c).encode(),
            &expected[..]
        );
        let w = [0x33; 16];
        let c = [0x44; 16];
        let mut expected = vec![0x00, 0x87, 0x08, 0x9B, 0x26, 0x7C, 0x24, 0x80, 0x10];
        expected.extend(w);
        expected.extend([0x81, 0x10]);
        expected.extend(c);
        expected.push(0x00);
        assert_eq!(
            &*mutual_auth_command(MgmtAlgorithm::Aes128, &w, &c).encode(),
            &expected[..]
        );
    }

    /// The whole exchange against a scripted card that knows the default 3DES key: the card's
    /// witness decrypts to the bytes we send back, and its answer to our challenge is checked.
    fn exchange_for(
        card_key: &MgmtKey,
        host_key: &MgmtKey,
        card_answers_right: bool,
    ) -> Result<(), PivError> {
        let alg = card_key.algorithm();
        let n = alg.block_len();
        let witness: Vec<u8> = (0..n as u8).map(|i| 0xA0 + i).collect();
        let challenge: Vec<u8> = (0..n as u8).map(|i| 0x50 + i).collect();
        let mut encrypted_witness = witness.clone();
        card_key.encrypt_block(&mut encrypted_witness).unwrap();
        let mut first_answer = vec![0x7C, (n + 2) as u8, 0x80, n as u8];
        first_answer.extend(&encrypted_witness);
        // What the host sends back: the witness as it decrypted it.
        let mut decrypted = encrypted_witness.clone();
        host_key.decrypt_block(&mut decrypted).unwrap();
        let second = mutual_auth_command(alg, &decrypted, &challenge)
            .encode()
            .to_vec();
        let (second_answer, second_sw) = if decrypted != witness {
            (vec![], 0x6982)
        } else {
            let mut response = challenge.clone();
            card_key.encrypt_block(&mut response).unwrap();
            if !card_answers_right {
                response[0] ^= 1;
            }
            let mut a = vec![0x7C, (n + 2) as u8, 0x82, n as u8];
            a.extend(response);
            (a, 0x9000)
        };
        let mut card = Scripted(vec![
            (
                witness_request_command(alg).encode().to_vec(),
                first_answer,
                0x9000,
            ),
            (second, second_answer, second_sw),
        ]);
        authenticate_with(&mut card, host_key, &challenge)
    }

    #[test]
    fn mutual_authentication_succeeds_with_the_right_key() {
        let tdes = MgmtKey::default_for(MgmtAlgorithm::Tdes).unwrap();
        exchange_for(&tdes, &tdes, true).unwrap();
        let aes = MgmtKey::from_hex(MgmtAlgorithm::Aes256, &"5a".repeat(32)).unwrap();
        exchange_for(&aes, &aes, true).unwrap();
    }

    #[test]
    fn a_wrong_key_or_a_wrong_card_answer_is_refused() {
        let right = MgmtKey::default_for(MgmtAlgorithm::Tdes).unwrap();
        let wrong = MgmtKey::from_hex(MgmtAlgorithm::Tdes, &"11".repeat(24)).unwrap();
        assert_eq!(
            exchange_for(&right, &wrong, true).unwrap_err(),
            PivError::WrongManagementKey
        );
        assert_eq!(
            exchange_for(&right, &right, false).unwrap_err(),
            PivError::ManagementKeyChallenge
        );
    }

    #[test]
    fn an_algorithm_the_card_does_not_hold_is_named() {
        let key = MgmtKey::default_for(MgmtAlgorithm::Aes192).unwrap();
        let mut card = Scripted(vec![(
            witness_request_command(MgmtAlgorithm::Aes192)
                .encode()
                .to_vec(),
            vec![],
            0x6A80,
        )]);
        assert_eq!(
            authenticate_with(&mut card, &key, &[0; 16]).unwrap_err(),
            PivError::ManagementKeyAlgorithm("AES-192")
        );
    }

    #[test]
    fn the_algorithm_comes_from_metadata_or_defaults_to_3des() {
        let cmd = piv::metadata_command(MANAGEMENT_KEY).encode().to_vec();
        let mut card = Scripted(vec![
            (
                cmd.clone(),
                vec![0x01, 0x01, 0x0A, 0x02, 0x02, 0x00, 0x01, 0x05, 0x01, 0x01],
                0x9000,
            ),
            (cmd.clone(), vec![], 0x6D00),
            (cmd.clone(), vec![], 0x6A81),
            (cmd, vec![], 0x6982),
        ]);
        assert_eq!(card_algorithm(&mut card).unwrap(), MgmtAlgorithm::Aes192);
        assert_eq!(card_algorithm(&mut card).unwrap(), MgmtAlgorithm::Tdes);
        assert_eq!(card_algorithm(&mut card).unwrap(), MgmtAlgorithm::Tdes);
        assert!(card_algorithm(&mut card).is_err());
    }
}
