//! A real SMTP server on loopback for the e-mail tests: it speaks the protocol over TCP, keeps
//! what arrives, and answers `RCPT TO` from a script so tests can make delivery fail.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One delivered message, decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    pub rcpt_to: Vec<String>,
    pub subject: String,
    pub content_language: String,
    pub body: String,
}

#[derive(Clone, Default)]
struct Shared {
    received: Arc<Mutex<Vec<Mail>>>,
    /// Replies to the next `RCPT TO` commands, in order; "250 OK" once it runs out.
    rcpt_replies: Arc<Mutex<VecDeque<String>>>,
}

pub struct SmtpServer {
    pub url: String,
    shared: Shared,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP");
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let shared = Shared::default();
        let state = shared.clone();
        actix_web::rt::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                actix_web::rt::spawn(session(stream, state.clone()));
            }
        });
        SmtpServer { url, shared }
    }

    /// The next `RCPT TO` commands get these replies (e.g. "451 4.3.0 try later").
    pub fn reply_to_rcpt(&self, replies: &[&str]) {
        let mut queue = self.shared.rcpt_replies.lock().unwrap();
        queue.extend(replies.iter().map(|r| (*r).to_owned()));
    }

    pub fn received(&self) -> Vec<Mail> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until `n` messages have arrived, then returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<Mail> {
        for _ in 0..200 {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "expected {n} mails, got {}: {:?}",
            self.received().len(),
            self.received()
        );
    }
}

async fn session(stream: TcpStream, shared: Shared) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if write
        .write_all(b"220 localhost ESMTP test\r\n")
        .await
        .is_err()
    {
        return;
    }
    let mut rcpt_to = Vec::new();
    loop {
        let mut line = String::new();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_ascii_uppercase();
        let answer = if command.starts_with("EHLO") || command.starts_with("HELO") {
            "250-localhost\r\n250 8BITMIME".to_owned()
        } else if command.starts_with("MAIL FROM") {
            rcpt_to.clear();
            "250 OK".to_owned()
        } else if command.starts_with("RCPT TO") {
            let scripted = shared.rcpt_replies.lock().unwrap().pop_front();
            let answer = scripted.unwrap_or_else(|| "250 OK".to_owned());
            if answer.starts_with('2') {
                let address = line.trim_end()[8..]
                    .trim()
                    .trim_matches(['<', '>'])
                    .to_owned();
                rcpt_to.push(address);
            }
            answer
        } else if command == "DATA" {
            if write.write_all(b"354 go ahead\r\n").await.is_err() {
                return;
            }
            let mut data = Vec::new();
            loop {
                let mut l = String::new();
                match lines.read_line(&mut l).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if l == ".\r\n" {
                    break;
                }
                // Dot-stuffing: a leading ".." stands for ".".
                let l = l.strip_prefix('.').unwrap_or(&l);
                data.extend_from_slice(l.as_bytes());
            }
            shared
                .received
                .lock()
                .unwrap()
                .push(decode(std::mem::take(&mut rcpt_to), &data));
            "250 queued".to_owned()
        } else if command == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            "250 OK".to_owned()
        };
        if write
            .write_all(format!("{answer}\r\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

fn decode(rcpt_to: Vec<String>, data: &[u8]) -> Mail {
    use mailparse::MailHeaderMap;
    let parsed = mailparse::parse_mail(data).expect("a well-formed message");
    Mail {
        rcpt_to,
        subject: parsed
            .headers
            .get_first_value("Subject")
            .unwrap_or_default(),
        content_language: parsed
            .headers
            .get_first_value("Content-Language")
            .unwrap_or_default(),
        body: parsed.get_body().expect("a text body"),
    }
}
