//! dangjian-agent: the administrator's USB key (a PIV card) reached through PC/SC. This part
//! holds the PIV layer — a pure APDU/TLV codec (`apdu`, `tlv`), the PIV application (`piv`),
//! the PIN (`pin`), the certificate as people see it (`certificate`) and the one module that
//! talks to the reader (`transaction`). The card-signed TLS client, the tunnel and enrolment
//! build on it.
#![forbid(unsafe_code)]

pub mod apdu;
pub mod certificate;
pub mod error;
pub mod pin;
pub mod piv;
pub mod tlv;
pub mod transaction;

pub use certificate::CardCertificate;
pub use error::PivError;
pub use pin::{Pin, PinStatus};
pub use piv::{AlgorithmId, ObjectId, SlotId};
pub use transaction::{list_readers, Reader, ReaderInfo};
