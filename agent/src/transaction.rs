//! The only place that talks to the reader (PC/SC through pcscd). Lists readers, connects to a
//! card, selects the PIV application once per connection (selecting it again would reset the
//! verified PIN, as it does on a YubiKey) and runs each PIV operation inside one PC/SC
//! transaction. Collects `61xx` continuations (the `pcsc` crate does not) and recovers from a
//! reset or removed card by reconnecting and re-selecting.

use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

use pcsc::{Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};

use crate::apdu::{self, Command, Response};
use crate::error::PivError;
use crate::piv::{self, Apdu};

/// A reader as `readers` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderInfo {
    pub name: String,
    pub card_present: bool,
    /// The card's ATR, when a card is present.
    pub atr: Option<Vec<u8>>,
}

fn establish() -> Result<Context, PivError> {
    Context::establish(Scope::User).map_err(PivError::from)
}

fn reader_names(ctx: &Context) -> Result<Vec<CString>, PivError> {
    match ctx.list_readers_owned() {
        Ok(names) => Ok(names),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

fn reader_states(ctx: &Context, names: &[CString]) -> Result<Vec<ReaderInfo>, PivError> {
    let mut states: Vec<ReaderState> = names
        .iter()
        .map(|n| ReaderState::new(n.clone(), State::UNAWARE))
        .collect();
    if !states.is_empty() {
        ctx.get_status_change(Duration::ZERO, &mut states)?;
    }
    Ok(states
        .iter()
        .map(|s| {
            let present = s.event_state().contains(State::PRESENT);
            ReaderInfo {
                name: s.name().to_string_lossy().into_owned(),
                card_present: present,
                atr: present.then(|| s.atr().to_vec()),
            }
        })
        .collect())
}

/// Every reader pcscd knows, with whether a card is in it.
pub fn list_readers() -> Result<Vec<ReaderInfo>, PivError> {
    let ctx = establish()?;
    let names = reader_names(&ctx)?;
    reader_states(&ctx, &names)
}

/// One reader and, while a card is in it, our connection to the card.
pub struct Reader {
    ctx: Context,
    name: CString,
    card: Option<pcsc::Card>,
    /// PIV has been selected on the current connection.
    selected: bool,
    /// Shared for the one-shot commands; exclusive for a tunnel session, so that no other
    /// program can select PIV (and so reset the verified PIN) under it.
    share: ShareMode,
}

impl Reader {
    /// Opens the named reader, or (without a name) the first reader holding a card. Fails with
    /// `NoReader`, `ReaderNotFound` or `NoCard` — callers that wait retry on those.
    pub fn open(name: Option<&str>) -> Result<Self, PivError> {
        Self::open_with(name, ShareMode::Shared)
    }

    /// Opens the reader as `open` does, holding the card exclusively (the tunnel session: the
    /// verified PIN must survive, which another program's SELECT would undo).
    pub fn open_exclusive(name: Option<&str>) -> Result<Self, PivError> {
        Self::open_with(name, ShareMode::Exclusive)
    }

    fn open_with(name: Option<&str>, share: ShareMode) -> Result<Self, PivError> {
        let ctx = establish()?;
        let names = reader_names(&ctx)?;
        if names.is_empty() {
            return Err(PivError::NoReader);
        }
        let chosen = match name {
            Some(wanted) => names
                .iter()
                .find(|n| n.to_string_lossy() == wanted)
                .or_else(|| names.iter().find(|n| n.to_string_lossy().contains(wanted)))
                .cloned()
                .ok_or_else(|| PivError::ReaderNotFound(wanted.to_string()))?,
            None => {
                let states = reader_states(&ctx, &names)?;
                let with_card = states.iter().position(|s| s.card_present);
                names[with_card.unwrap_or(0)].clone()
            }
        };
        let mut reader = Self {
            ctx,
            name: chosen,
            card: None,
            selected: false,
            share,
        };
        reader.connect()?;
        Ok(reader)
    }

    /// Opens a reader as `open` does, retrying while there is no reader or no card, until
    /// `timeout` has passed.
    pub fn wait_and_open(name: Option<&str>, timeout: Duration) -> Result<Self, PivError> {
        Self::wait_and_open_with(name, timeout, ShareMode::Shared)
    }

    /// `wait_and_open` holding the card exclusively (see `open_exclusive`).
    pub fn wait_and_open_exclusive(
        name: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, PivError> {
        Self::wait_and_open_with(name, timeout, ShareMode::Exclusive)
    }

    fn wait_and_open_with(
        name: Option<&str>,
        timeout: Duration,
        share: ShareMode,
    ) -> Result<Self, PivError> {
        let deadline = Instant::now() + timeout;
        loop {
            match Self::open_with(name, share) {
                Err(PivError::NoReader | PivError::NoCard(_) | PivError::CardRemoved)
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }

    /// The reader's name as pcscd reports it.
    pub fn name(&self) -> String {
        self.name.to_string_lossy().into_owned()
    }

    fn name_cstr(&self) -> &CStr {
        &self.name
    }

    fn connect(&mut self) -> Result<(), PivError> {
        // Right after insertion pcscd (or a program that looked at the card) may still hold
        // it for a moment, or still be settling its protocol: a sharing violation or a protocol
        // mismatch is retried for up to 3 s.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut result = self
            .ctx
            .connect(self.name_cstr(), self.share, Protocols::ANY);
        while matches!(
            result,
            Err(pcsc::Error::SharingViolation | pcsc::Error::ProtoMismatch)
        ) && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
            result = self
                .ctx
                .connect(self.name_cstr(), self.share, Protocols::ANY);
        }
        match result {
            Ok(card) => {
                self.card = Some(card);
                self.selected = false;
                Ok(())
            }
            Err(pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard) => {
                self.card = None;
                Err(PivError::NoCard(self.name()))
            }
            Err(pcsc::Error::UnknownReader | pcsc::Error::ReaderUnavailable) => {
                self.card = None;
                Err(PivError::ReaderNotFound(self.name()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// After a reset the card is still there: reconnect to it; after a removal, forget it (the
    /// next operation connects to whatever card is then in the reader).
    fn recover(&mut self, cause: &PivError) {
        self.selected = false;
        let share = self.share;
        match (cause, self.card.as_mut()) {
            (PivError::CardReset, Some(card)) => {
                if card
                    .reconnect(share, Protocols::ANY, Disposition::LeaveCard)
                    .is_err()
                {
                    self.card = None;
                }
            }
            _ => self.card = None,
        }
    }

    /// Runs `op` inside one PC/SC transaction, selecting the PIV application first when this
    /// connection has not yet. If the card was reset or replaced before `op` sent anything,
    /// reconnects, re-selects and tries once more; if it happens during `op`, reconnects for the
    /// next operation and returns the error (a PIN verified before a reset is gone, so repeating
    /// blindly would be wrong).
    pub fn run<T>(
        &mut self,
        mut op: impl FnMut(&mut dyn Apdu) -> Result<T, PivError>,
    ) -> Result<T, PivError> {
        for attempt in 0..2 {
            if self.card.is_none() {
                self.connect()?;
            }
            let card = self.card.as_mut().expect("connected above");
            let selected = &mut self.selected;
            let outcome = match card.transaction() {
                Err(e) => Outcome::BeforeOp(e.into()),
                Ok(tx) => {
                    let mut link = Link { card: &tx };
                    let select = if *selected {
                        Ok(())
                    } else {
                        piv::select(&mut link)
                    };
                    match select {
                        Err(e) => Outcome::BeforeOp(e),
                        Ok(()) => {
                            *selected = true;
                            Outcome::Done(op(&mut link))
                        }
                    }
                }
            };
            match outcome {
                Outcome::Done(Err(e @ (PivError::CardReset | PivError::CardRemoved))) => {
                    self.recover(&e);
                    return Err(e);
                }
                Outcome::Done(result) => return result,
                Outcome::BeforeOp(e @ (PivError::CardReset | PivError::CardRemoved))
                    if attempt == 0 =>
                {
                    self.recover(&e);
                }
                Outcome::BeforeOp(e) => {
                    if matches!(e, PivError::CardReset | PivError::CardRemoved) {
                        self.recover(&e);
                    }
                    return Err(e);
                }
            }
        }
        // Second attempt also lost the card before `op` ran.
        Err(PivError::NoCard(self.name()))
    }

    /// True while a card is in the reader (pcscd's view, no APDU sent).
    pub fn card_present(&self) -> Result<bool, PivError> {
        let states = reader_states(&self.ctx, std::slice::from_ref(&self.name))?;
        Ok(states.first().is_some_and(|s| s.card_present))
    }
}

enum Outcome<T> {
    /// Failed before `op` ran: safe to retry.
    BeforeOp(PivError),
    Done(Result<T, PivError>),
}

/// The card inside one transaction, as an `Apdu` link: each exchange is one logical command
/// (chaining and `61xx` handled by `apdu::exchange`).
pub struct Link<'a> {
    card: &'a pcsc::Card,
}

impl Apdu for Link<'_> {
    fn exchange(&mut self, cmd: &Command) -> Result<Response, PivError> {
        let mut buffer = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
        let card = self.card;
        apdu::exchange(cmd, |bytes| {
            let answer = card.transmit(bytes, &mut buffer)?;
            Ok(answer.to_vec())
        })
    }
}
