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

#[tokio::test]
async fn toxics_added_over_the_control_api_shape_open_connections() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let control = proxy.serve_control().await.unwrap();
    let api = format!("http://{}", control.addr());
    let http = reqwest::Client::new();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut client).await.unwrap(), b"ping");

    let added = http
        .put(format!("{api}/toxics/slow"))
        .body(r#"{"kind":"latency","ms":150}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 204);
    let started = std::time::Instant::now();
    assert_eq!(round_trip(&mut client).await.unwrap(), b"ping");
    // Both directions wait: at least two delays.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    let bad = http
        .put(format!("{api}/toxics/x"))
        .body(r#"{"kind":"bandwidth","bytes_per_second":0}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let listed: serde_json::Value = http
        .get(format!("{api}/toxics"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["slow"]["ms"], 150);

    let removed = http
        .delete(format!("{api}/toxics/slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let gone = http
        .delete(format!("{api}/toxics/slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let started = std::time::Instant::now();
    assert_eq!(round_trip(&mut client).await.unwrap(), b"ping");
    assert!(started.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn a_reset_peer_toxic_resets_connections() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut client).await.unwrap(), b"ping");
    proxy
        .add_toxic("reset", plexus_faultproxy::Toxic::ResetPeer { after_ms: 0 })
        .unwrap();
    let broken = tokio::time::timeout(Duration::from_secs(5), round_trip(&mut client))
        .await
        .unwrap();
    assert!(broken.is_err());
    assert!(proxy.remove_toxic("reset"));
    let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut again).await.unwrap(), b"ping");
}
