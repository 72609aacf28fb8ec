//! SIGINT and SIGTERM: caught so that the services are always stopped before exiting.

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::error::{CliError, CliResult};

/// SIGINT and SIGTERM, caught from the moment this is created.
pub struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    /// Starts catching both signals.
    pub fn new() -> CliResult<Self> {
        let int = signal(SignalKind::interrupt())
            .map_err(|e| CliError::failed(format!("cannot catch SIGINT: {e}")))?;
        let term = signal(SignalKind::terminate())
            .map_err(|e| CliError::failed(format!("cannot catch SIGTERM: {e}")))?;
        Ok(Signals { int, term })
    }

    /// The next signal's name.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}
