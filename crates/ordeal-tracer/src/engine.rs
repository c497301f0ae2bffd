//! The seam between a run's supervisor and a tracing engine.
//!
//! [`Engine`] is what the supervisor needs from a running engine: start programs, signal a
//! node (recording a fault mark), take captures for snapshots, count events, report exits,
//! and shut down. [`Launcher`] starts one; it says what the engine can do before anything
//! starts ([`Capabilities`]), so a run refuses what its engine cannot do up front.
//!
//! [`Ptrace`] launches the tracer with every call of the table stopping the thread; [`Ebpf`]
//! launches the same tracer observing calls through the eBPF probe, where only the calls an
//! [`Interceptor`] watches stop (call-level faults, call triggers and partitions on loopback
//! need those). Both intercept single calls.

use crate::{
    Capture, CaptureRequest, Config, Error, Interceptor, Marker, Notice, Observer, Sink, SpawnSpec,
    Stats, Tracer,
};
use ordeal_events::{Event, FaultMark};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

/// What an engine can do beyond tracing, signalling and capturing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Intercepting single calls: an [`Interceptor`] sees each recorded call at entry and
    /// exit and may fail, shorten, delay, hold or drop it.
    pub intercept: bool,
}

/// Starts an engine.
pub trait Launcher {
    /// The engine's name, for messages (`ptrace`).
    fn name(&self) -> &'static str;
    /// What the engine will be able to do, known before it starts.
    fn capabilities(&self) -> Capabilities;
    /// Starts the engine writing its events to `sink`. `interceptor` is given only to an
    /// engine whose [`Capabilities::intercept`] is true; another one refuses it.
    fn start(
        &self,
        config: Config,
        sink: Box<dyn Sink>,
        interceptor: Option<Box<dyn Interceptor>>,
    ) -> Result<Box<dyn Engine>, Error>;
}

/// A running engine, as the supervisor uses it.
pub trait Engine {
    /// Starts a program; returns its pid once it is on its way to exec.
    fn spawn(&self, spec: SpawnSpec) -> Result<i32, Error>;
    /// Sends `signal` (0: none) to every process of `node`; with a `marker`, a `fault` event
    /// records it in the trace.
    fn signal_node(&self, node: &str, signal: i32, marker: Option<FaultMark>) -> Result<(), Error>;
    /// Makes the engine look at the threads held by a fault again (a gate opened).
    fn wake(&self) -> Result<(), Error>;
    /// A handle other threads use to record marker events (checkpoints).
    fn marker(&self) -> Arc<dyn MarkEvents>;
    /// Every traced thread (of one node, or all) with what the engine knows of it.
    fn capture(&self, req: CaptureRequest) -> Result<Capture, Error>;
    /// Events written so far.
    fn events_so_far(&self) -> u64;
    /// Process exits, in the order they happened.
    fn notices(&self) -> &Receiver<Notice>;
    /// Kills every process still alive, waits until all are gone, flushes the sink and
    /// returns the counters.
    fn shutdown(self: Box<Self>) -> Result<Stats, Error>;
}

/// Records marker events (a `checkpoint`) from any thread, in their place in the trace.
pub trait MarkEvents: Send + Sync {
    /// Records an event `call` (class `proc`) on `node`'s latest root process with `pos` and
    /// `data`; returns its `seq` once it is written.
    fn mark(
        &self,
        node: &str,
        call: &str,
        pos: Option<u64>,
        data: Option<String>,
    ) -> Result<u64, Error>;
}

impl MarkEvents for Marker {
    fn mark(
        &self,
        node: &str,
        call: &str,
        pos: Option<u64>,
        data: Option<String>,
    ) -> Result<u64, Error> {
        Marker::mark(self, node, call, pos, data)
    }
}

/// The ptrace engine ([`Tracer`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ptrace;

impl Launcher for Ptrace {
    fn name(&self) -> &'static str {
        "ptrace"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { intercept: true }
    }

    fn start(
        &self,
        config: Config,
        sink: Box<dyn Sink>,
        interceptor: Option<Box<dyn Interceptor>>,
    ) -> Result<Box<dyn Engine>, Error> {
        Ok(Box::new(Tracer::start_with(config, sink, interceptor)?))
    }
}

/// The tracer observing calls through the eBPF probe ([`Observer::Ebpf`]): needs root and a
/// kernel with BPF ring buffers, raw tracepoints and BTF; its start fails otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ebpf;

impl Launcher for Ebpf {
    fn name(&self) -> &'static str {
        "ebpf"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { intercept: true }
    }

    fn start(
        &self,
        mut config: Config,
        sink: Box<dyn Sink>,
        interceptor: Option<Box<dyn Interceptor>>,
    ) -> Result<Box<dyn Engine>, Error> {
        config.observer = Observer::Ebpf;
        Ok(Box::new(Tracer::start_with(config, sink, interceptor)?))
    }
}

impl<S: Sink + 'static> Engine for Tracer<S> {
    fn spawn(&self, spec: SpawnSpec) -> Result<i32, Error> {
        Tracer::spawn(self, spec)
    }
    fn signal_node(&self, node: &str, signal: i32, marker: Option<FaultMark>) -> Result<(), Error> {
        Tracer::signal_node(self, node, signal, marker)
    }
    fn wake(&self) -> Result<(), Error> {
        Tracer::wake(self)
    }
    fn marker(&self) -> Arc<dyn MarkEvents> {
        Arc::new(Tracer::marker(self))
    }
    fn capture(&self, req: CaptureRequest) -> Result<Capture, Error> {
        Tracer::capture(self, req)
    }
    fn events_so_far(&self) -> u64 {
        Tracer::events_so_far(self)
    }
    fn notices(&self) -> &Receiver<Notice> {
        Tracer::notices(self)
    }
    fn shutdown(self: Box<Self>) -> Result<Stats, Error> {
        Tracer::shutdown(*self).map(|(stats, _sink)| stats)
    }
}

/// A boxed sink is a sink: an engine started through a [`Launcher`] writes to one.
impl Sink for Box<dyn Sink> {
    fn event(&mut self, ev: &Event) -> std::io::Result<()> {
        (**self).event(ev)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        (**self).flush()
    }
    fn caught_up(&mut self, ts: u64) {
        (**self).caught_up(ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptrace_intercepts_and_runs_behind_the_trait() {
        assert_eq!(Ptrace.name(), "ptrace");
        assert_eq!(Ptrace.capabilities(), Capabilities { intercept: true });
        let engine = Ptrace
            .start(Config::default(), Box::new(Vec::<Event>::new()), None)
            .unwrap();
        assert_eq!(engine.events_so_far(), 0);
        assert!(engine.notices().try_recv().is_err());
        let stats = engine.shutdown().unwrap();
        assert_eq!(stats, Stats::default());
    }
}
