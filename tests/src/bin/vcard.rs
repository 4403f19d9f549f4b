//! `vcard`: the virtual PIV card for tests and demos. Connects to vpcd (pcscd's virtual reader
//! driver) and answers PIV commands from a JSON state file. SIGUSR1 removes the card (closes the
//! socket), SIGUSR2 inserts it again (reconnects).

use std::path::PathBuf;

use clap::Parser;
use dangjian_tests::vcard::{vpcd, CardState, VirtualCard};

/// Virtual PIV card for vsmartcard's vpcd. SIGUSR1 = remove, SIGUSR2 = insert.
#[derive(Parser)]
#[command(name = "vcard")]
struct Args {
    /// vpcd host
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// vpcd port: 35963 = "Virtual PCD 00 00", 35964 = "Virtual PCD 00 01"
    #[arg(long, default_value_t = 35963)]
    port: u16,
    /// State file (JSON: keys, objects, PIN, counters); made when missing
    #[arg(long)]
    state: Option<PathBuf>,
    /// PIN of a new card
    #[arg(long, default_value = "123456")]
    pin: String,
    /// Certificate (PEM) to put into slot 9A, with --init-key
    #[arg(long, requires = "init_key")]
    init_cert: Option<PathBuf>,
    /// Private key (PKCS#8 PEM, P-256 or RSA-2048) for slot 9A, with --init-cert
    #[arg(long, requires = "init_cert")]
    init_key: Option<PathBuf>,
    /// Certificate (PEM) of the attestation key (slot F9, object 5FFF01), with
    /// --attestation-key: the card then attests keys generated on it (INS F9)
    #[arg(long, requires = "attestation_key")]
    attestation_cert: Option<PathBuf>,
    /// The attestation key (P-256 PKCS#8 PEM), with --attestation-cert
    #[arg(long, requires = "attestation_cert")]
    attestation_key: Option<PathBuf>,
    /// Log every APDU (the PIN is hidden)
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut state = match &args.state {
        Some(path) if path.exists() => CardState::load(path)?,
        _ => CardState::fresh(&args.pin),
    };
    if let (Some(cert), Some(key)) = (&args.init_cert, &args.init_key) {
        state.install(
            0x9A,
            &std::fs::read_to_string(cert)?,
            &std::fs::read_to_string(key)?,
        )?;
    }
    if let (Some(cert), Some(key)) = (&args.attestation_cert, &args.attestation_key) {
        state.install_attestation(
            &std::fs::read_to_string(cert)?,
            &std::fs::read_to_string(key)?,
        )?;
    }
    if let Some(path) = &args.state {
        state.save(path)?;
    }
    let control = vpcd::Control::default();
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, control.remove.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGUSR2, control.insert.clone())?;
    let mut card = VirtualCard::new(state, args.state.clone());
    vpcd::serve(
        &mut card,
        &format!("{}:{}", args.host, args.port),
        &control,
        args.verbose,
    )
}
