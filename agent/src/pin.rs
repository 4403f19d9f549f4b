//! The PIN: held in a zeroising buffer only while a VERIFY needs it, never printed, padded to
//! the 8-byte PIV reference data block (SP 800-73-4 part 2 §2.4.3: 6–8 bytes, FF padding).

use std::fmt;
use std::io::{BufRead, IsTerminal};

use zeroize::{Zeroize, Zeroizing};

use crate::error::PivError;

/// A PIN of 6 to 8 ASCII characters, wiped from memory on drop. `Debug` never shows it.
pub struct Pin(Zeroizing<Vec<u8>>);

/// What the card says about the PIN before a try (an empty VERIFY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinStatus {
    /// Already verified in this card session.
    Verified,
    /// Not verified; this many tries remain.
    TriesLeft(u8),
    /// No tries left.
    Blocked,
}

impl Pin {
    /// Takes the PIN typed (without its line ending). Refuses what a PIV card cannot hold.
    pub fn new(typed: &str) -> Result<Self, PivError> {
        let bytes = typed.as_bytes();
        if !(6..=8).contains(&bytes.len()) || !bytes.iter().all(|b| b.is_ascii_graphic()) {
            return Err(PivError::PinFormat);
        }
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// Takes a PUK (the PIN unblocking key): the same form as a PIN, its own error.
    pub fn puk(typed: &str) -> Result<Self, PivError> {
        Self::new(typed).map_err(|_| PivError::PukFormat)
    }

    /// The 8-byte VERIFY data: the PIN padded with FF.
    pub fn padded(&self) -> Zeroizing<Vec<u8>> {
        let mut block = Zeroizing::new(vec![0xFF; 8]);
        block[..self.0.len()].copy_from_slice(&self.0);
        block
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<hidden>)")
    }
}

/// Asks for the PIN: without echo on a terminal, else one line from standard input (scripts,
/// tests). The typed text is wiped once the `Pin` is made.
pub fn read_pin(prompt: &str) -> anyhow::Result<Pin> {
    read_secret(prompt, Pin::new)
}

/// Asks for the PUK as `read_pin` asks for the PIN.
pub fn read_puk(prompt: &str) -> anyhow::Result<Pin> {
    read_secret(prompt, Pin::puk)
}

fn read_secret(prompt: &str, make: fn(&str) -> Result<Pin, PivError>) -> anyhow::Result<Pin> {
    let mut typed = if std::io::stdin().is_terminal() {
        // The prompt through the agent's one writer (in order with what was said before it),
        // then the reading without echo.
        crate::prompt::ask(prompt);
        rpassword::read_password()?
    } else {
        let mut line = String::new();
        let read = std::io::stdin().lock().read_line(&mut line);
        if let Err(e) = read {
            line.zeroize();
            return Err(e.into());
        }
        line
    };
    let result = make(typed.trim_end_matches(['\r', '\n']));
    typed.zeroize();
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_padded_with_ff() {
        assert_eq!(
            &*Pin::new("123456").unwrap().padded(),
            &[b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF]
        );
        assert_eq!(&*Pin::new("12345678").unwrap().padded(), b"12345678");
    }

    #[test]
    fn malformed_pins_are_refused() {
        for bad in ["", "12345", "123456789", "12 456", "１２３４５６"] {
            assert_eq!(Pin::new(bad).unwrap_err(), PivError::PinFormat, "{bad}");
        }
    }

    #[test]
    fn puks_have_their_own_error() {
        assert_eq!(&*Pin::puk("12345678").unwrap().padded(), b"12345678");
        assert_eq!(Pin::puk("1234").unwrap_err(), PivError::PukFormat);
    }

    #[test]
    fn debug_never_shows_the_pin() {
        assert_eq!(
            format!("{:?}", Pin::new("123456").unwrap()),
            "Pin(<hidden>)"
        );
    }
}
