//! Trace context from enqueue to execution (feature `otel`): the attempt's `process` span is a
//! child of the `send` span that enqueued the job, in the trace of the span that was current
//! then, with OpenTelemetry's messaging attributes and without the job's arguments.

#![allow(missing_docs)]

mod common;

use std::time::Duration;

use common::{db, wait_until};
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use runledger::job::JobState;
use runledger::{JobError, Worker, job};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[job(queue = "traced")]
async fn traced(secret: String) -> Result<(), JobError> {
    let _ = secret;
    Ok(())
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_is_a_child_of_the_span_that_enqueued_its_job() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("runledger-test")));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let db = db().await;
    let rl = db.client();
    let request = tracing::info_span!("request");
    let traced = async {
        rl.enqueue(Traced {
            secret: "card-4242".into(),
        })
        .await
        .unwrap()
        .id()
    }
    .instrument(request.clone())
    .await;
    drop(request);
    let alone = rl
        .enqueue(Traced {
            secret: "card-4242".into(),
        })
        .await
        .unwrap()
        .id();

    let worker = Worker::builder(rl.pool().clone())
        .queues(["traced"])
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    for id in [traced, alone] {
        wait_until(Duration::from_secs(10), "the job completes", || async {
            rl.job(id).await.unwrap().unwrap().state == JobState::Completed
        })
        .await;
    }
    worker.shutdown().await.unwrap();
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let named =
        |name: &str| -> Vec<&SpanData> { spans.iter().filter(|s| s.name == name).collect() };

    let request = named("request")[0];
    let sends = named("send traced");
    assert_eq!(sends.len(), 2, "one producer span per enqueue");
    let processes = named("process traced");
    assert_eq!(processes.len(), 2);
    let process_of = |id: runledger::job::JobId| {
        *processes
            .iter()
            .find(|s| attribute(s, "messaging.message.id") == Some(id.0.to_string()))
            .expect("the job's process span")
    };

    // Enqueued inside `request`: send is its child, process is send's child, one trace.
    let send = sends
        .iter()
        .find(|s| s.parent_span_id == request.span_context.span_id())
        .expect("a send span under the request");
    let process = process_of(traced);
    assert_eq!(
        process.span_context.trace_id(),
        request.span_context.trace_id()
    );
    assert_eq!(process.parent_span_id, send.span_context.span_id());
    assert_eq!(
        attribute(process, "messaging.system").as_deref(),
        Some("runledger")
    );
    assert_eq!(
        attribute(process, "messaging.operation.type").as_deref(),
        Some("process")
    );
    assert_eq!(
        attribute(process, "messaging.destination.name").as_deref(),
        Some("traced")
    );
    assert_eq!(
        attribute(process, "runledger.job.kind").as_deref(),
        Some("traced")
    );
    assert_eq!(
        attribute(process, "runledger.outcome").as_deref(),
        Some("completed")
    );
    assert_eq!(process.span_kind, opentelemetry::trace::SpanKind::Consumer);

    // Enqueued outside any span: its own send span starts the trace.
    let alone = process_of(alone);
    assert_ne!(
        alone.span_context.trace_id(),
        request.span_context.trace_id()
    );
    assert_ne!(alone.parent_span_id, SpanId::INVALID);
    assert!(
        sends
            .iter()
            .any(|s| s.span_context.span_id() == alone.parent_span_id)
    );

    // No span carries the job's arguments.
    for span in &spans {
        for kv in &span.attributes {
            assert!(!kv.value.to_string().contains("card-4242"), "{}", span.name);
        }
    }
}
