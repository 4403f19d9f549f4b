//! The card for a tunnel session: ONE dedicated thread owns the PC/SC connection (exclusive),
//! and everything else sends it jobs over a channel — rustls calls `Signer::sign` blocking, and
//! a single owner means no two operations ever interleave on the card. A separate watcher
//! thread (its own PC/SC context) follows the reader with `get_status_change` and reports
//! removal and insertion at once.

use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use pcsc::{Context, ReaderState, Scope, State};

use crate::error::PivError;
use crate::pin::{Pin, PinStatus};
use crate::piv::{self, AlgorithmId, SlotId};
use crate::transaction::Reader;

type Job = Box<dyn FnOnce(&mut Reader) + Send>;

/// A handle to the card thread. Cloning shares the thread; the thread ends when the last
/// handle is dropped.
#[derive(Clone)]
pub struct CardThread {
    jobs: mpsc::Sender<Job>,
    reader: String,
    signatures: Arc<AtomicU64>,
}

impl CardThread {
    /// Starts the thread and opens the reader on it (exclusively), waiting up to `wait` for a
    /// card.
    pub fn open(reader: Option<&str>, wait: Duration) -> Result<Self, PivError> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (opened_tx, opened_rx) = mpsc::channel();
        let wanted = reader.map(str::to_string);
        std::thread::Builder::new()
            .name("card".into())
            .spawn(move || {
                let mut reader = match Reader::wait_and_open_exclusive(wanted.as_deref(), wait) {
                    Ok(r) => {
                        let _ = opened_tx.send(Ok(r.name()));
                        r
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    job(&mut reader);
                }
                // Last handle gone: leave the card locked again.
                let _ = reader.run(piv::logout);
            })
            .map_err(|e| PivError::Pcsc(e.to_string()))?;
        let name = opened_rx
            .recv()
            .map_err(|_| PivError::Pcsc("card thread ended".into()))??;
        Ok(Self {
            jobs,
            reader: name,
            signatures: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The reader's name.
    pub fn reader_name(&self) -> &str {
        &self.reader
    }

    /// Runs `f` on the card thread and waits for its answer (blocking).
    pub fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Reader) -> Result<T, PivError> + Send + 'static,
    ) -> Result<T, PivError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |reader| {
            let _ = tx.send(f(reader));
        });
        self.jobs
            .send(job)
            .map_err(|_| PivError::Pcsc("card thread ended".into()))?;
        rx.recv()
            .map_err(|_| PivError::Pcsc("card thread ended".into()))?
    }

    /// The certificate in slot 9A (DER), if any.
    pub fn certificate(&self) -> Result<Option<Vec<u8>>, PivError> {
        self.call(|r| r.run(|card| piv::read_certificate(card, SlotId::Authentication)))
    }

    /// The PIN state (no try spent).
    pub fn pin_status(&self) -> Result<PinStatus, PivError> {
        self.call(|r| r.run(piv::pin_status))
    }

    /// Verifies the PIN; the `Pin` is moved to the card thread and wiped there after use.
    pub fn verify_pin(&self, pin: Pin) -> Result<(), PivError> {
        self.call(move |r| {
            let result = r.run(|card| piv::verify_pin(card, &pin));
            drop(pin);
            result
        })
    }

    /// The private-key operation of slot 9A (see `piv::sign`); counted.
    pub fn sign(&self, alg: AlgorithmId, input: Vec<u8>) -> Result<Vec<u8>, PivError> {
        let out =
            self.call(move |r| r.run(|card| piv::sign(card, alg, SlotId::Authentication, &input)))?;
        self.signatures.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    /// Card signatures made through this handle since it was opened.
    pub fn signatures(&self) -> u64 {
        self.signatures.load(Ordering::Relaxed)
    }
}

/// What the watcher reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardEvent {
    Removed,
    Inserted,
}

/// Watches `reader` from a thread of its own and calls `on_event` on each change of card
/// presence (the first call reports the state at start only when no card is present). Ends
/// when `on_event` returns false.
pub fn watch(
    reader: &str,
    mut on_event: impl FnMut(CardEvent) -> bool + Send + 'static,
) -> Result<(), PivError> {
    let ctx = Context::establish(Scope::User)?;
    let name = CString::new(reader).map_err(|_| PivError::ReaderNotFound(reader.into()))?;
    std::thread::Builder::new()
        .name("card-watch".into())
        .spawn(move || {
            let mut states = [ReaderState::new(name, State::UNAWARE)];
            let mut present: Option<bool> = None;
            loop {
                match ctx.get_status_change(Duration::from_millis(500), &mut states) {
                    Ok(()) | Err(pcsc::Error::Timeout) => {}
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                }
                let event = states[0].event_state();
                states[0].sync_current_state();
                let now = event.contains(State::PRESENT) && !event.contains(State::EMPTY);
                if present != Some(now) {
                    let first = present.is_none();
                    present = Some(now);
                    let report = match (first, now) {
                        (true, true) => None,
                        (_, false) => Some(CardEvent::Removed),
                        (false, true) => Some(CardEvent::Inserted),
                    };
                    if let Some(e) = report {
                        if !on_event(e) {
                            return;
                        }
                    }
                }
            }
        })
        .map_err(|e| PivError::Pcsc(e.to_string()))?;
    Ok(())
}
