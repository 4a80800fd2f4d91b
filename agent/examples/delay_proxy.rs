//! A TCP proxy that holds every chunk a client sends for a while before
//! passing it on: an API server that answers each call late, for the e2e
//! test that a slow API server costs the node agent no event.
//!
//! `delay_proxy LISTEN UPSTREAM DELAY_MS`, e.g.
//! `delay_proxy 10.243.0.1:16443 10.243.0.1:6443 300`. TLS passes through
//! untouched (the API server's certificate names the host, not the port).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream, delay] = args.as_slice() else {
        eprintln!("usage: delay_proxy LISTEN UPSTREAM DELAY_MS");
        std::process::exit(2);
    };
    let delay = Duration::from_millis(delay.parse().expect("DELAY_MS: milliseconds"));
    let listener = TcpListener::bind(listen).await?;
    eprintln!("delaying what clients of {listen} send to {upstream} by {delay:?}");
    loop {
        let (client, _) = listener.accept().await?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            match TcpStream::connect(&upstream).await {
                Ok(server) => relay(client, server, delay).await,
                Err(e) => eprintln!("connecting to {upstream}: {e}"),
            }
        });
    }
}

/// Passes bytes both ways until either side closes; what the client sends
/// waits `delay` first.
async fn relay(client: TcpStream, server: TcpStream, delay: Duration) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let to_server = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            tokio::time::sleep(delay).await;
            if server_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let to_client = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(to_server, to_client);
}
