//! The smallest end-to-end check: the binary starts, serves, and answers.

use crate::support::instance::Instance;
use thespian::proto::Empty;

#[tokio::test]
async fn an_unconfigured_instance_answers_every_method_at_once() {
    let instance = Instance::builder("idle").start().await;
    let mut client = instance.client().await;
    client.a(Empty {}).await.expect("A answers");
    client.b(Empty {}).await.expect("B answers");
    client.c(Empty {}).await.expect("C answers");
}
