//! dangjian-agent: the administrator's USB key (a PIV card) reached through PC/SC. This part
//! holds the PIV layer — a pure APDU/TLV codec (`apdu`, `tlv`), the PIV application (`piv`),
//! the PIN (`pin`), the certificate as people see it (`certificate`) and the one module that
//! talks to the reader (`transaction`). On it: the card thread and reader watcher (`card`),
//! the card as the TLS client key (`tls`), the local tunnel for the browser (`tunnel`), the
//! `connect` command's session and card supervision (`connect`), what is asked at the keyboard
//! (`prompt`) and enrolment (`enrol`).
#![forbid(unsafe_code)]

pub mod apdu;
pub mod card;
pub mod certificate;
pub mod connect;
pub mod enrol;
pub mod error;
pub mod mgmt;
pub mod pin;
pub mod piv;
pub mod prompt;
pub mod tls;
pub mod tlv;
pub mod transaction;
pub mod tunnel;

pub use certificate::CardCertificate;
pub use error::PivError;
pub use pin::{Pin, PinStatus};
pub use piv::{AlgorithmId, ObjectId, SlotId};
pub use transaction::{list_readers, Reader, ReaderInfo};
