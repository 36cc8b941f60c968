//! Server reflection, v1 and v1alpha: grpcurl works without proto files.

use prost::Message;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_reflection::pb::v1;
use tonic_reflection::pb::v1alpha;

use crate::both_databases;
use crate::helpers::{Db, TestApp};

async fn channel(app: &TestApp) -> Channel {
    Channel::from_shared(format!("http://{}", app.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

/// Sends one v1 reflection request and returns the one answer.
async fn ask_v1(
    app: &TestApp,
    request: v1::server_reflection_request::MessageRequest,
) -> Result<v1::server_reflection_response::MessageResponse, Status> {
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel(app).await);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await?
        .into_inner();
    let answer = answers.message().await?.expect("an answer");
    Ok(answer.message_response.expect("a message response"))
}

/// Sends one v1alpha reflection request and returns the one answer.
async fn ask_v1alpha(
    app: &TestApp,
    request: v1alpha::server_reflection_request::MessageRequest,
) -> v1alpha::server_reflection_response::MessageResponse {
    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(channel(app).await);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection call")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("reflection stream")
        .expect("an answer");
    answer.message_response.expect("a message response")
}

const SERVICES: [&str; 2] = ["tokend.v1.ApiTokenService", "grpc.health.v1.Health"];

async fn v1_lists_the_services(db: Db) {
    let app = TestApp::spawn(db).await;
    use v1::server_reflection_request::MessageRequest;
    use v1::server_reflection_response::MessageResponse;
    let MessageResponse::ListServicesResponse(list) =
        ask_v1(&app, MessageRequest::ListServices(String::new()))
            .await
            .unwrap()
    else {
        panic!("not a list of services");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in SERVICES {
        assert!(
            names.iter().any(|n| n == service),
            "{service} missing from {names:?}"
        );
    }
    app.stop().await;
}

async fn v1alpha_lists_the_services(db: Db) {
    let app = TestApp::spawn(db).await;
    use v1alpha::server_reflection_request::MessageRequest;
    use v1alpha::server_reflection_response::MessageResponse;
    let MessageResponse::ListServicesResponse(list) =
        ask_v1alpha(&app, MessageRequest::ListServices(String::new())).await
    else {
        panic!("not a list of services");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in SERVICES {
        assert!(
            names.iter().any(|n| n == service),
            "{service} missing from {names:?}"
        );
    }
    app.stop().await;
}

/// Decodes the file descriptors of a reflection answer.
fn decode(files: Vec<Vec<u8>>) -> Vec<prost_types::FileDescriptorProto> {
    files
        .iter()
        .map(|bytes| {
            prost_types::FileDescriptorProto::decode(bytes.as_slice()).expect("descriptor")
        })
        .collect()
}

/// Asserts that `files` hold `tokend/v1/api_token.proto` with the service
/// and its RPCs.
fn assert_describes_the_service(files: &[prost_types::FileDescriptorProto]) {
    let file = files
        .iter()
        .find(|f| f.name() == "tokend/v1/api_token.proto")
        .unwrap_or_else(|| {
            panic!(
                "api_token.proto missing from {:?}",
                files.iter().map(|f| f.name()).collect::<Vec<_>>()
            )
        });
    assert_eq!(file.package(), "tokend.v1");
    let service = file
        .service
        .iter()
        .find(|s| s.name() == "ApiTokenService")
        .expect("ApiTokenService");
    let methods: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
    for rpc in [
        "GetApiToken",
        "ListApiTokens",
        "LookupApiToken",
        "CreateApiToken",
    ] {
        assert!(methods.contains(&rpc), "{rpc} missing from {methods:?}");
    }
}

async fn v1_describes_the_service_by_symbol(db: Db) {
    let app = TestApp::spawn(db).await;
    use v1::server_reflection_request::MessageRequest;
    use v1::server_reflection_response::MessageResponse;
    let answer = ask_v1(
        &app,
        MessageRequest::FileContainingSymbol("tokend.v1.ApiTokenService".into()),
    )
    .await
    .unwrap();
    let MessageResponse::FileDescriptorResponse(files) = answer else {
        panic!("not a file descriptor: {answer:?}");
    };
    assert_describes_the_service(&decode(files.file_descriptor_proto));

    // The imports a client needs to use the descriptor are served too.
    let answer = ask_v1(
        &app,
        MessageRequest::FileByFilename("google/api/annotations.proto".into()),
    )
    .await
    .unwrap();
    let MessageResponse::FileDescriptorResponse(files) = answer else {
        panic!("google/api/annotations.proto not served: {answer:?}");
    };
    assert!(
        decode(files.file_descriptor_proto)
            .iter()
            .any(|f| f.name() == "google/api/annotations.proto")
    );

    // An unknown symbol is NOT_FOUND (tonic's reflection ends the stream with
    // the status rather than sending an ErrorResponse; either is fine).
    let answer = ask_v1(
        &app,
        MessageRequest::FileContainingSymbol("tokend.v1.NoSuchThing".into()),
    )
    .await;
    match answer {
        Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
        Ok(MessageResponse::ErrorResponse(error)) => {
            assert_eq!(error.error_code, Code::NotFound as i32)
        }
        Ok(other) => panic!("an unknown symbol was described: {other:?}"),
    }
    app.stop().await;
}

async fn v1alpha_describes_the_service_by_symbol(db: Db) {
    let app = TestApp::spawn(db).await;
    use v1alpha::server_reflection_request::MessageRequest;
    use v1alpha::server_reflection_response::MessageResponse;
    let answer = ask_v1alpha(
        &app,
        MessageRequest::FileContainingSymbol("tokend.v1.ApiTokenService".into()),
    )
    .await;
    let MessageResponse::FileDescriptorResponse(files) = answer else {
        panic!("not a file descriptor: {answer:?}");
    };
    assert_describes_the_service(&decode(files.file_descriptor_proto));
    app.stop().await;
}

both_databases!(
    v1_lists_the_services,
    v1alpha_lists_the_services,
    v1_describes_the_service_by_symbol,
    v1alpha_describes_the_service_by_symbol,
);
