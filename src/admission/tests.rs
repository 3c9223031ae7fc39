//! The slots and the queue on tokio's paused clock, where every wait is
//! exact: the limit, shedding, leaving the queue, the `queued` span, and
//! the queue that grows as Little's law says it must.

use std::sync::{Arc, Mutex};

use opentelemetry::trace::{SpanId, Status};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{SpanData, SpanProcessor},
};
use tokio::time::{Duration, Instant, sleep, sleep_until};

use super::*;

/// Keeps the spans that end.
#[derive(Debug, Default, Clone)]
struct Kept(Arc<Mutex<Vec<SpanData>>>);

impl SpanProcessor for Kept {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &Context) {}

    fn on_end(&self, span: SpanData) {
        self.0.lock().unwrap().push(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

impl Kept {
    fn queued(&self) -> Vec<SpanData> {
        let kept = self.0.lock().unwrap();
        kept.iter()
            .filter(|span| span.name == QUEUED_SPAN)
            .cloned()
            .collect()
    }
}

fn limited(max_in_flight: u32, max_queue: u32) -> Admission {
    Admission::new(Some(max_in_flight), max_queue, Metrics::default())
}

/// Lets a request to `A` in as the server does: at once, after its wait,
/// or not at all.
async fn admit(admission: &Admission, tracer: &Tracer, parent: &Context) -> Result<Slot, Failure> {
    match admission.enter(MethodName::A) {
        Entry::Admitted(slot) => Ok(slot),
        Entry::Queued(queued) => Ok(queued.wait(tracer, parent).await),
        Entry::Full(refused) => Err(refused),
    }
}

/// A request that holds its slot for `work`, then says how long it
/// waited for it.
fn request(admission: &Admission, tracer: &Tracer, work: Duration) -> JoinHandle {
    let (admission, tracer) = (admission.clone(), tracer.clone());
    tokio::spawn(async move {
        let parent = tracer.open(&Context::new(), "A", SpanKind::Server);
        let arrived = Instant::now();
        let slot = admit(&admission, &tracer, &parent).await;
        let waited = arrived.elapsed();
        let slot = slot?;
        sleep(work).await;
        drop(slot);
        parent.span().end();
        Ok(waited)
    })
}

type JoinHandle = tokio::task::JoinHandle<Result<Duration, Failure>>;

/// Lets every task that can run, run, without moving the paused clock.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn without_a_limit_everything_is_let_in_at_once_and_nothing_is_counted() {
    let admission = Admission::default();
    let (tracer, parent) = (Tracer::default(), Context::new());
    let slots: Vec<Slot> =
        futures::future::join_all((0..1000).map(|_| admit(&admission, &tracer, &parent)))
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
    assert_eq!(slots.len(), 1000);
    assert_eq!((admission.in_flight(), admission.waiting()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_request_past_the_limit_waits_for_a_slot_and_its_wait_is_a_queued_span() {
    let kept = Kept::default();
    let tracer = Tracer::new(Some(Arc::new(kept.clone())));
    let admission = limited(2, 10);
    let work = Duration::from_secs(1);
    let first = request(&admission, &tracer, work);
    let second = request(&admission, &tracer, work);
    settle().await;
    assert_eq!((admission.in_flight(), admission.waiting()), (2, 0));
    sleep(Duration::from_millis(200)).await;
    let third = request(&admission, &tracer, work);
    settle().await;
    assert_eq!((admission.in_flight(), admission.waiting()), (2, 1));

    assert_eq!(first.await.unwrap().unwrap(), Duration::ZERO);
    assert_eq!(second.await.unwrap().unwrap(), Duration::ZERO);
    assert_eq!(
        third.await.unwrap().unwrap(),
        Duration::from_millis(800),
        "the third waits until the first two's second of work is over"
    );
    assert_eq!((admission.in_flight(), admission.waiting()), (0, 0));

    let queued = kept.queued();
    assert_eq!(queued.len(), 1, "only a request that waited has the span");
    let span = &queued[0];
    assert_eq!(
        span.end_time.duration_since(span.start_time).unwrap(),
        Duration::from_millis(800)
    );
    assert_eq!(span.span_kind, SpanKind::Internal);
    assert_eq!(
        span.attributes,
        [KeyValue::new("thespian.queue.ahead", 0_i64)]
    );
    let kept = kept.0.lock().unwrap();
    let server = kept
        .iter()
        .find(|s| s.span_context.span_id() == span.parent_span_id)
        .expect("the queued span's parent is its request's server span");
    assert_eq!(server.span_kind, SpanKind::Server);
    assert_ne!(span.parent_span_id, SpanId::INVALID);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_sheds_at_once_with_resource_exhausted() {
    let admission = limited(1, 1);
    let tracer = Tracer::default();
    let holder = request(&admission, &tracer, Duration::from_secs(5));
    let waiter = request(&admission, &tracer, Duration::ZERO);
    settle().await;
    assert_eq!((admission.in_flight(), admission.waiting()), (1, 1));

    let before = Instant::now();
    let shed = request(&admission, &tracer, Duration::ZERO)
        .await
        .unwrap()
        .expect_err("no slot and no room in the queue");
    assert_eq!(before.elapsed(), Duration::ZERO, "shed without waiting");
    assert_eq!(shed.code(), tonic::Code::ResourceExhausted);
    assert_eq!(shed.cause(), "queue_full");
    assert_eq!(
        shed.to_string(),
        "this instance is at its limit: all 1 slots are busy (MAX_IN_FLIGHT) and 1 requests \
         are already waiting for one (MAX_QUEUE)"
    );
    assert_eq!(admission.waiting(), 1, "a shed request takes no place");

    assert_eq!(holder.await.unwrap().unwrap(), Duration::ZERO);
    assert_eq!(waiter.await.unwrap().unwrap(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn with_no_queue_a_busy_instance_sheds_everything_past_the_limit() {
    let admission = limited(1, 0);
    let tracer = Tracer::default();
    let holder = request(&admission, &tracer, Duration::from_secs(1));
    settle().await;
    let shed = request(&admission, &tracer, Duration::ZERO).await.unwrap();
    assert!(matches!(shed, Err(Failure::QueueFull { .. })), "{shed:?}");
    holder.await.unwrap().unwrap();
    request(&admission, &tracer, Duration::ZERO)
        .await
        .unwrap()
        .expect("a slot is free again");
}

#[tokio::test(start_paused = true)]
async fn a_request_dropped_while_it_waits_leaves_the_queue_and_its_span_ends_there() {
    let kept = Kept::default();
    let tracer = Tracer::new(Some(Arc::new(kept.clone())));
    let admission = limited(1, 1);
    let holder = request(&admission, &tracer, Duration::from_secs(10));
    let gives_up = request(&admission, &tracer, Duration::ZERO);
    settle().await;
    assert_eq!(admission.waiting(), 1);

    sleep(Duration::from_secs(3)).await;
    gives_up.abort();
    assert!(gives_up.await.unwrap_err().is_cancelled());
    assert_eq!(admission.waiting(), 0, "its place is free again");
    let queued = kept.queued();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        queued[0]
            .end_time
            .duration_since(queued[0].start_time)
            .unwrap(),
        Duration::from_secs(3)
    );
    assert_eq!(queued[0].status, Status::Unset);

    // The place it left is taken by the next, which gets the slot next.
    let next = request(&admission, &tracer, Duration::ZERO);
    settle().await;
    assert_eq!(admission.waiting(), 1);
    assert_eq!(holder.await.unwrap().unwrap(), Duration::ZERO);
    assert_eq!(next.await.unwrap().unwrap(), Duration::from_secs(7));
    assert_eq!((admission.in_flight(), admission.waiting()), (0, 0));
}

/// How often [`arrive`] samples the queue and the slots: every event (an
/// arrival, a slot given back) falls on a multiple of it, so both are
/// constant between two, and a sample in the middle of each gives the
/// exact area under their curves.
const TICK: Duration = Duration::from_millis(25);

/// Sends a request every `every` for `arrivals` requests, each holding a
/// slot for a second, and samples the queue's length and the slots in use
/// in the middle of every [`TICK`] for `seconds`. Returns each request's
/// wait, in arrival order, and the samples.
async fn arrive(
    admission: &Admission,
    every: Duration,
    arrivals: u32,
    seconds: u32,
) -> (Vec<Duration>, Vec<Sample>) {
    let tracer = Tracer::default();
    let start = Instant::now();
    let sampler = {
        let admission = admission.clone();
        tokio::spawn(async move {
            let ticks = seconds * (Duration::from_secs(1).as_millis() / TICK.as_millis()) as u32;
            let mut samples = Vec::new();
            for tick in 0..ticks {
                sleep_until(start + TICK * tick + TICK / 2).await;
                samples.push(Sample {
                    waiting: admission.waiting(),
                    in_flight: admission.in_flight(),
                });
            }
            samples
        })
    };
    let mut requests = Vec::new();
    for n in 0..arrivals {
        sleep_until(start + every * n).await;
        requests.push(request(admission, &tracer, Duration::from_secs(1)));
    }
    let mut waits = Vec::new();
    for request in requests {
        waits.push(request.await.unwrap().expect("the queue is long enough"));
    }
    (waits, sampler.await.unwrap())
}

/// The queue's length and the slots in use at one moment.
#[derive(Debug, Clone, Copy)]
struct Sample {
    waiting: usize,
    in_flight: usize,
}

/// Ten slots, a second of work each and twenty requests a second for ten
/// seconds: the instance serves ten a second, so the queue grows by ten a
/// second and a request that arrives at t waits about t. Over the whole
/// episode, until the queue has drained, the time-averaged queue length
/// is the arrival rate times the average wait, as Little's law says
/// (L = λW): the area under the queue's curve is exactly the time all the
/// requests waited.
#[tokio::test(start_paused = true)]
async fn twice_the_load_the_slots_can_serve_grows_the_queue_as_littles_law_says() {
    let admission = limited(10, 10_000);
    let seconds = 20;
    let (waits, samples) = arrive(&admission, Duration::from_millis(50), 200, seconds).await;
    let lengths: Vec<usize> = samples.iter().map(|sample| sample.waiting).collect();

    // Twenty arrive and ten start each second: ten more wait every second.
    let per_second: Vec<usize> = (1..10).map(|s| lengths[40 * s]).collect();
    assert_eq!(per_second, [10, 20, 30, 40, 50, 60, 70, 80, 90]);
    for (n, waited) in waits.iter().enumerate() {
        // The first ten start as they arrive, half a second apart; each
        // later one starts as the one ten before it ends, so the k-th ten
        // (k = n / 10) start k seconds after the first ten, and each of
        // them arrived k / 2 seconds after its counterpart: it waits k / 2.
        let expected = Duration::from_millis(500) * (n as u32 / 10);
        assert_eq!(*waited, expected, "request {n}");
    }
    // The wait grows with the time of arrival: W(t) = t to within 0.5 s.
    assert_eq!(waits[199], Duration::from_millis(9500));
    assert_eq!(*lengths.last().unwrap(), 0, "drained within {seconds} s");

    // Little's law over the episode: L̄ = λ W̄, or ∫L dt = Σ W.
    let area = TICK * lengths.iter().sum::<usize>() as u32;
    let waited: Duration = waits.iter().sum();
    assert_eq!(waited, Duration::from_secs(950));
    assert_eq!(area, waited);
    let span = Duration::from_secs(seconds.into()).as_secs_f64();
    let mean_length = area.as_secs_f64() / span;
    let arrival_rate = 200.0 / span;
    let mean_wait = waited.as_secs_f64() / 200.0;
    assert!((mean_length - arrival_rate * mean_wait).abs() < 1e-9);
    assert_eq!((admission.in_flight(), admission.waiting()), (0, 0));
}

/// Below capacity (eight a second for ten slots of a second each) nothing
/// waits, and the slots in use are L = λW = 8 × 1 s: Little's law for
/// the requests in flight.
#[tokio::test(start_paused = true)]
async fn below_capacity_nothing_waits_and_the_slots_in_use_are_lambda_times_w() {
    let admission = limited(10, 10_000);
    let seconds = 12;
    let (waits, samples) = arrive(&admission, Duration::from_millis(125), 80, seconds).await;
    assert!(waits.iter().all(|w| w.is_zero()), "{waits:?}");
    assert!(samples.iter().all(|sample| sample.waiting == 0));
    // From the first second, when the first request ends, to the tenth,
    // when arrivals stop: always eight in flight.
    let steady: Vec<usize> = samples[40..400].iter().map(|s| s.in_flight).collect();
    assert!(steady.iter().all(|&n| n == 8), "{steady:?}");
    // And over the whole episode, the area under the curve is 80 requests
    // of a second each.
    let area = TICK * samples.iter().map(|s| s.in_flight).sum::<usize>() as u32;
    assert_eq!(area, Duration::from_secs(80));
}
