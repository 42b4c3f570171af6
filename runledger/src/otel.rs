//! Trace context from enqueue to execution (feature `otel`): the enqueuing span's context goes
//! into the job's row as a W3C `traceparent`, and the attempt's `process` span is parented to
//! it. Contexts come from `tracing-opentelemetry` (the `tracing` span current at enqueue), or
//! from OpenTelemetry's own current context.

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `traceparent` of `span`'s OpenTelemetry context, or of the current OpenTelemetry
/// context when `span` has none.
pub(crate) fn traceparent(span: &tracing::Span) -> Option<String> {
    let from_span = span.context();
    let cx = if from_span.span().span_context().is_valid() {
        from_span
    } else {
        Context::current()
    };
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| format(&sc))
}

/// A span context as a W3C `traceparent`: `00-<trace id>-<span id>-<flags>`.
fn format(sc: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    )
}

/// The remote span context a `traceparent` names, if it is well formed and valid.
pub(crate) fn parse(traceparent: &str) -> Option<SpanContext> {
    let mut parts = traceparent.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || parts.next().is_some() || trace.len() != 32 || span.len() != 16 {
        return None;
    }
    let sc = SpanContext::new(
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(span).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
        true,
        TraceState::default(),
    );
    sc.is_valid().then_some(sc)
}

/// Parents `span` (not entered yet) to the span `traceparent` names. Without the
/// `tracing-opentelemetry` layer, or with a malformed value, nothing changes.
pub(crate) fn set_parent(span: &tracing::Span, traceparent: &str) {
    if let Some(sc) = parse(traceparent) {
        let _ = span.set_parent(Context::new().with_remote_span_context(sc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_round_trip_and_bad_ones_are_refused() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = parse(tp).unwrap();
        assert!(sc.is_remote() && sc.is_sampled());
        assert_eq!(format(&sc), tp);
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-zz-00f067aa0ba902b7-01",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
