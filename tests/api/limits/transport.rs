//! Limits the transport enforces before any handler runs: the message and
//! header-list caps at their boundaries, HTTP/2 stream cap and keepalive,
//! gRPC framing, and requests that do not decode.

use std::time::Duration;

use prost::Message;
use tokend::pb;
use tonic::Code;

use super::wire::{
    PING, RawConnection, RawPeer, SETTINGS, answer, framed, header_list_size, raw_call, setting,
};
use crate::helpers::*;

crate::both_databases!(
    the_message_cap_holds_at_its_boundary,
    the_header_cap_is_the_servers_and_holds_at_its_boundary,
    requests_that_do_not_decode_are_invalid_arguments,
    http2_stream_cap_and_keepalive_are_enforced,
    unary_calls_take_exactly_one_well_framed_message,
);

const GET: &str = "/tokend.v1.ApiTokenService/GetApiToken";
const LIST: &str = "/tokend.v1.ApiTokenService/ListApiTokens";

/// A Create request whose encoding is exactly `len` bytes (the padding is
/// in `description`, which validation caps at 1000 characters).
fn create_of_size(len: usize) -> pb::CreateApiTokenRequest {
    let mut request = organization_token("sized");
    let bare = request.encoded_len();
    // The description field costs its tag, its length's varint and itself.
    for n in len.saturating_sub(bare + 8)..len {
        request.description = "x".repeat(n);
        if request.encoded_len() == len {
            return request;
        }
    }
    panic!("no description makes a {len}-byte request");
}

/// The message cap (`--max-message-size`) at its boundary: a request of
/// exactly the cap is decoded and reaches validation (INVALID_ARGUMENT
/// naming the field), one byte more is refused by the server's decoder
/// with OUT_OF_RANGE naming both sizes (tonic's client has no cap of its
/// own and could not know the server's), and so is one of 10 MB.
async fn the_message_cap_holds_at_its_boundary(db: Db) {
    const CAP: usize = 16 * 1024;
    let app = TestApp::spawn_with(db, |s| s.limits.max_message_size = CAP).await;
    assert_invalid(app.try_create(create_of_size(CAP)).await, "description");
    for len in [CAP + 1, 10 * 1024 * 1024] {
        let status = assert_code(app.try_create(create_of_size(len)).await, Code::OutOfRange);
        assert!(
            status.message().contains(&format!(
                "decoded message length too large: found {len} bytes, the limit is: {CAP} bytes"
            )),
            "{status:?}"
        );
    }
    // Just over the field limit and far under the cap: the contract's
    // INVALID_ARGUMENT naming the field.
    let mut long = organization_token("long");
    long.description = "x".repeat(1001);
    assert_invalid(app.try_create(long).await, "description");
    app.stop().await;
}

/// A GetApiToken whose header list is exactly `size` bytes as HTTP/2
/// counts it (the padding is an `x-padding` header).
fn get_with_header_list(
    connection: &RawConnection,
    secret: &str,
    size: usize,
) -> http::Request<()> {
    let bare = header_list_size(&connection.request(GET, secret, &[("x-padding", "")]));
    let padding = "p".repeat(size.checked_sub(bare).expect("room for padding"));
    let request = connection.request(GET, secret, &[("x-padding", &padding)]);
    assert_eq!(header_list_size(&request), size);
    request
}

/// The header-list cap (`--max-header-list-size`) is the server's and holds
/// at its boundary. The calls go through the `h2` crate, which sends any
/// header block (see `wire.rs`), so each refusal is one the server sent:
/// one byte over the cap is answered HTTP 431 for that call alone, and past
/// four times the cap the server ends the connection with GOAWAY
/// ENHANCE_YOUR_CALM. One byte under is served. (h2 counts a list of
/// exactly the cap as over, so the boundary is cap - 1 served, cap + 1
/// refused.)
async fn the_header_cap_is_the_servers_and_holds_at_its_boundary(db: Db) {
    const CAP: usize = 16 * 1024;
    let app = TestApp::spawn_with(db, |s| s.limits.max_header_list_size = CAP as u32).await;
    let get = framed(&pb::GetApiTokenRequest {
        organization_id: ORG.into(),
        token_id: app.token_id.clone(),
    });
    let mut connection = RawConnection::open(&app).await;
    let call = |connection: &RawConnection, size: usize| {
        get_with_header_list(connection, &app.secret, size)
    };

    let under = call(&connection, CAP - 1);
    let served = answer(connection.send(under, Some(get.clone())).await)
        .await
        .expect("an answer");
    assert_eq!(served.status, http::StatusCode::OK, "{served:?}");
    assert_eq!(served.code, Some(0), "one byte under the cap: {served:?}");

    let over = call(&connection, CAP + 1);
    let refused = answer(connection.send(over, None).await)
        .await
        .expect("the server's answer");
    assert_eq!(
        refused.status,
        http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "one byte over the cap: {refused:?}"
    );
    assert_eq!(refused.code, None, "refused below gRPC: {refused:?}");
    // For that call only: the connection serves the next one.
    let again = call(&connection, CAP - 1);
    let served = answer(connection.send(again, Some(get.clone())).await)
        .await
        .expect("an answer after the refusal");
    assert_eq!(served.code, Some(0), "{served:?}");

    let far_over = call(&connection, 4 * CAP + 1);
    let ended = answer(connection.send(far_over, None).await)
        .await
        .expect_err("the connection ends");
    assert!(
        ended.is_go_away() && ended.is_remote(),
        "a GOAWAY the server sent: {ended:?}"
    );
    assert_eq!(
        ended.reason(),
        Some(h2::Reason::ENHANCE_YOUR_CALM),
        "{ended:?}"
    );
    // The server serves new connections.
    let mut fresh = RawConnection::open(&app).await;
    let request = call(&fresh, CAP - 1);
    let served = answer(fresh.send(request, Some(get)).await)
        .await
        .expect("an answer on a new connection");
    assert_eq!(served.code, Some(0), "{served:?}");
    app.stop().await;
}

/// ListApiTokensRequest with `workspace_id` (tag 2) as raw bytes, so that a
/// test can send what no protobuf library would: a string that is not UTF-8.
#[derive(Clone, PartialEq, prost::Message)]
struct RawListRequest {
    #[prost(string, tag = "1")]
    organization_id: String,
    #[prost(bytes = "vec", tag = "2")]
    workspace_id: Vec<u8>,
}

async fn requests_that_do_not_decode_are_invalid_arguments(db: Db) {
    let app = TestApp::spawn(db).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    let path = http::uri::PathAndQuery::from_static("/tokend.v1.ApiTokenService/ListApiTokens");
    let codec = tonic_prost::ProstCodec::<RawListRequest, pb::ListApiTokensResponse>::default();
    let raw = RawListRequest {
        organization_id: ORG.into(),
        workspace_id: vec![b'w', 0xff, 0xfe],
    };
    grpc.ready().await.expect("ready");
    let result = grpc
        .unary(app.req(raw.clone()), path.clone(), codec.clone())
        .await;
    // Not INTERNAL (tonic's default for a decode failure): the caller's
    // mistake, named by its JSON field name.
    let status = assert_invalid(result, "workspaceId");
    assert!(status.message().contains("UTF-8"), "{status:?}");
    // Valid UTF-8 through the same raw path is an ordinary, empty listing.
    let fine = RawListRequest {
        workspace_id: b"ws-none".to_vec(),
        ..raw
    };
    grpc.ready().await.expect("ready");
    let listed = grpc.unary(app.req(fine), path, codec).await.expect("list");
    assert_eq!(listed.into_inner().total_count, 0);
    app.stop().await;
}

/// HTTP/2 limits as a peer sees them: the server's SETTINGS advertise the
/// configured MAX_CONCURRENT_STREAMS; a peer that answers the keepalive
/// PINGs keeps its connection ping after ping, and one that stops answering
/// is closed after its first unanswered PING (a half-dead client or NAT
/// entry does not hold a slot). Counted in PINGs, not in time.
async fn http2_stream_cap_and_keepalive_are_enforced(db: Db) {
    const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    let app = TestApp::spawn_with(db, |s| {
        s.limits.max_concurrent_streams = 7;
        s.limits.keepalive_interval = Duration::from_millis(200);
        s.limits.keepalive_timeout = Duration::from_millis(300);
    })
    .await;
    let patience = Duration::from_secs(10);

    // A live peer acknowledges SETTINGS and every PING.
    let mut live = RawPeer::connect(&app).await;
    let settings = live.next(patience).await.expect("the server's preface");
    assert_eq!(settings.kind, SETTINGS, "the server's preface is SETTINGS");
    assert_eq!(
        setting(&settings.payload, MAX_CONCURRENT_STREAMS),
        Some(7),
        "MAX_CONCURRENT_STREAMS the server advertised"
    );
    live.acknowledge(&settings).await;
    let mut answered = 0;
    while answered < 4 {
        let frame = live.next(patience).await.unwrap_or_else(|| {
            panic!("a peer that answered {answered} keepalive PINGs lost its connection")
        });
        if live.acknowledge(&frame).await {
            answered += 1;
        }
    }

    // A silent peer: its preface, then nothing.
    let mut silent = RawPeer::connect(&app).await;
    let mut pings = 0;
    while let Some(frame) = silent.next(patience).await {
        if frame.kind == PING && frame.flags & 0x1 == 0 {
            pings += 1;
            assert!(
                pings <= 2,
                "the server kept pinging a peer that never answers"
            );
        }
    }
    assert!(
        pings >= 1,
        "closed before any keepalive PING: not by keepalive"
    );
    app.stop().await;
}

/// A unary call carrying two request messages is refused (tonic would read
/// the second and silently drop it); broken framings get tonic's INTERNAL,
/// which gRPC's compression spec requires for a compressed flag without an
/// encoding; and the server keeps serving.
async fn unary_calls_take_exactly_one_well_framed_message(db: Db) {
    let app = TestApp::spawn(db).await;
    let request = pb::ListApiTokensRequest {
        organization_id: ORG.into(),
        ..Default::default()
    };
    let one = framed(&request);
    assert_eq!(raw_call(&app, LIST, one.clone()).await.0, 0, "one message");

    let two = [one.clone(), one.clone()].concat();
    let (code, message) = raw_call(&app, LIST, two).await;
    assert_eq!(
        code,
        Code::InvalidArgument as i32,
        "two messages: {message}"
    );
    assert!(message.contains("one request message"), "{message}");

    let compressed_flag = [&[1u8][..], &one[1..]].concat();
    let broken = [
        ("empty body", Vec::new()),
        ("frame cut short", one[..one.len() - 1].to_vec()),
        ("header cut short", one[..3].to_vec()),
        ("compressed flag without grpc-encoding", compressed_flag),
        ("flag 7", [&[7u8][..], &one[1..]].concat()),
    ];
    for (case, body) in broken {
        let (code, message) = raw_call(&app, LIST, body).await;
        assert_eq!(code, Code::Internal as i32, "{case}: {message}");
    }
    assert_eq!(raw_call(&app, LIST, one).await.0, 0, "still serving");
    app.stop().await;
}
