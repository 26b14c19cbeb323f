//! The proxy between a real client and a real echo server on loopback.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plexus_faultproxy::{FaultProxy, Mode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if socket.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn round_trip(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    stream.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).await?;
    Ok(buf.to_vec())
}

#[tokio::test]
async fn forwards_cuts_refuses_and_recovers() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut client).await.unwrap(), b"ping");

    proxy.set_mode(Mode::Refuse);
    // The open connection is closed by the proxy: the next exchange fails.
    let broken = tokio::time::timeout(Duration::from_secs(5), round_trip(&mut client))
        .await
        .expect("a cut connection fails at once rather than hanging");
    assert!(broken.is_err());
    // New connections are accepted and closed at once.
    let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
    let failed = tokio::time::timeout(Duration::from_secs(5), round_trip(&mut refused))
        .await
        .unwrap();
    assert!(failed.is_err());

    proxy.set_mode(Mode::Forward);
    let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut again).await.unwrap(), b"ping");
    let stats = proxy.stats();
    assert_eq!(stats.accepted, 3);
    assert!(stats.cut >= 2, "{stats:?}");
}

#[tokio::test]
async fn a_blackhole_holds_traffic_until_it_lifts() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut client).await.unwrap(), b"ping");
    proxy.set_mode(Mode::Blackhole);
    client.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    let held = tokio::time::timeout(Duration::from_millis(200), client.read_exact(&mut buf)).await;
    assert!(held.is_err(), "nothing comes through a black hole");
    proxy.set_mode(Mode::Forward);
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ping");
}

#[tokio::test]
async fn down_refuses_connections_and_listens_again() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut client).await.unwrap(), b"ping");

    proxy.set_mode(Mode::Down);
    proxy.settled().await;
    let err = TcpStream::connect(proxy.addr()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let broken = tokio::time::timeout(Duration::from_secs(5), round_trip(&mut client))
        .await
        .expect("a cut connection fails at once rather than hanging");
    assert!(broken.is_err());

    proxy.set_mode(Mode::Forward);
    proxy.settled().await;
    let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut again).await.unwrap(), b"ping");
}
