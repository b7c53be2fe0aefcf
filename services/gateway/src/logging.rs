//! Log lines written to stdout by a thread of their own.
//!
//! The access log is one line per request. Written from the request's own
//! task, a line is a `write(2)` under the stdout lock on a Tokio worker, and
//! when stdout is a pipe that its reader drains slowly (a container's log
//! driver on a busy host), that worker blocks and every task queued on it
//! waits. Here a request only queues its line; the writer thread writes
//! whatever has queued up in one go, every few milliseconds.

use std::{
    io::{self, BufWriter, Write},
    sync::mpsc::{self, Receiver, SyncSender, TryRecvError},
    thread,
    time::Duration,
};

use tracing_subscriber::fmt::MakeWriter;

/// Lines queued before a logging request waits for the writer.
const QUEUE_LINES: usize = 16 * 1024;
/// How long a line may wait before it is written.
const DRAIN_EVERY: Duration = Duration::from_millis(20);

enum Message {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// The `MakeWriter` for the subscriber.
#[derive(Clone)]
pub struct QueuedStdout {
    queue: SyncSender<Message>,
}

/// Flushes what is queued when dropped (at the end of `main`).
pub struct FlushGuard {
    queue: SyncSender<Message>,
}

/// Starts the writer thread. Keep the guard alive while the process logs.
pub fn stdout_writer() -> io::Result<(QueuedStdout, FlushGuard)> {
    let (queue, lines) = mpsc::sync_channel(QUEUE_LINES);
    thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_lines(&lines, io::stdout()))?;
    Ok((
        QueuedStdout {
            queue: queue.clone(),
        },
        FlushGuard { queue },
    ))
}

fn write_lines(lines: &Receiver<Message>, out: impl Write) {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    // Wakes on a timer and writes what has queued up: a request queueing a
    // line never has to wake this thread (no futex call, no context switch
    // per request), and a busy second costs about fifty writes.
    loop {
        thread::sleep(DRAIN_EVERY);
        loop {
            match lines.try_recv() {
                Ok(Message::Line(line)) => {
                    let _ = out.write_all(&line);
                }
                Ok(Message::Flush(done)) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        let _ = out.flush();
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.queue.send(Message::Flush(done)).is_ok() {
            // Bounded: a stdout nobody reads must not hang the exit.
            let _ = wait.recv_timeout(Duration::from_secs(2));
        }
    }
}

/// One formatted event; the subscriber writes each event with one call.
pub struct Line {
    queue: SyncSender<Message>,
    buffer: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if !self.buffer.is_empty() {
            let line = std::mem::take(&mut self.buffer);
            // Waits only when QUEUE_LINES lines are already queued.
            let _ = self.queue.send(Message::Line(line));
        }
    }
}

impl<'a> MakeWriter<'a> for QueuedStdout {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            queue: self.queue.clone(),
            buffer: Vec::with_capacity(256),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_and_in_order_before_the_flush_returns() {
        let (queue, lines) = mpsc::sync_channel(128);
        let sink = Shared::default();
        let out = sink.clone();
        let writer = thread::spawn(move || write_lines(&lines, out));
        let make = QueuedStdout {
            queue: queue.clone(),
        };
        for i in 0..100 {
            let mut line = make.make_writer();
            write!(line, "line {i}").unwrap();
            writeln!(line).unwrap();
        }
        drop(FlushGuard {
            queue: queue.clone(),
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let expected: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
        drop((make, queue));
        writer.join().unwrap();
    }
}
