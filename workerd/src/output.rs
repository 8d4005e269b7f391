//! Reading a sandbox's stdout and stderr pipes into offset-tagged chunks.

use std::os::fd::OwnedFd;

use herd_proto::v1::{OutputChunk, OutputStream, WorkerEvent, worker_event};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

/// Bytes read from a pipe at a time, and so the largest chunk sent.
const CHUNK_BYTES: usize = 64 * 1024;

/// Bytes of stderr kept to find its last line for the error message.
const STDERR_TAIL_BYTES: usize = 4096;

/// The pump's findings once both pipes reached end of file.
#[derive(Debug, Default)]
pub struct OutputSummary {
    /// The last non-empty line of stderr, without its newline.
    pub last_stderr_line: Option<String>,
}

/// Reads both pipes until end of file, sending each read as a chunk with
/// its offset in the combined log. While the receiver is full the pump
/// waits, so the command blocks on a full pipe rather than lose output.
/// When the receiver is gone the pump keeps draining the pipes.
pub async fn pump(
    stdout: OwnedFd,
    stderr: OwnedFd,
    events: mpsc::Sender<WorkerEvent>,
) -> std::io::Result<OutputSummary> {
    let mut stdout = Some(pipe::Receiver::from_owned_fd(stdout)?);
    let mut stderr = Some(pipe::Receiver::from_owned_fd(stderr)?);
    let mut out_buffer = vec![0; CHUNK_BYTES];
    let mut err_buffer = vec![0; CHUNK_BYTES];
    let mut offset = 0u64;
    let mut tail: Vec<u8> = Vec::new();

    while stdout.is_some() || stderr.is_some() {
        let (stream, read) = tokio::select! {
            read = read_some(&mut stdout, &mut out_buffer) => (OutputStream::Stdout, read),
            read = read_some(&mut stderr, &mut err_buffer) => (OutputStream::Stderr, read),
        };
        let count = read?;
        if count == 0 {
            match stream {
                OutputStream::Stderr => stderr = None,
                _ => stdout = None,
            }
            continue;
        }
        let data = match stream {
            OutputStream::Stderr => {
                keep_tail(&mut tail, &err_buffer[..count]);
                err_buffer[..count].to_vec()
            }
            _ => out_buffer[..count].to_vec(),
        };
        let chunk = OutputChunk {
            stream: stream as i32,
            offset,
            data,
        };
        offset += count as u64;
        let event = WorkerEvent {
            event: Some(worker_event::Event::Output(chunk)),
        };
        // A closed receiver means the manager is gone; keep draining.
        let _ = events.send(event).await;
    }
    Ok(OutputSummary {
        last_stderr_line: last_line(&tail),
    })
}

/// Reads from `receiver`, or waits forever once it is closed so the other
/// branch of the select wins.
async fn read_some(
    receiver: &mut Option<pipe::Receiver>,
    buffer: &mut [u8],
) -> std::io::Result<usize> {
    match receiver {
        Some(receiver) => receiver.read(buffer).await,
        None => std::future::pending().await,
    }
}

fn keep_tail(tail: &mut Vec<u8>, data: &[u8]) {
    tail.extend_from_slice(data);
    if tail.len() > STDERR_TAIL_BYTES {
        tail.drain(..tail.len() - STDERR_TAIL_BYTES);
    }
}

/// Returns the last non-empty line of `tail`, lossily decoded.
fn last_line(tail: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(tail);
    text.lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_skips_blank_lines() {
        assert_eq!(
            last_line(b"first\nbash: line 1: nope: command not found\n\n"),
            Some("bash: line 1: nope: command not found".into())
        );
        assert_eq!(last_line(b"\n \n"), None);
    }

    #[test]
    fn tail_stays_bounded() {
        let mut tail = Vec::new();
        keep_tail(&mut tail, &[b'a'; 5000]);
        keep_tail(&mut tail, b"\nlast");
        assert_eq!(tail.len(), STDERR_TAIL_BYTES);
        assert_eq!(last_line(&tail), Some("last".into()));
    }
}
