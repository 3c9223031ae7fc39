//! An ecosystem as one CloudFormation template for AWS ECS on Fargate.
//!
//! Every service is an ECS service in one cluster, joined by Service
//! Connect in one Cloud Map namespace: each has the client alias
//! `<name>:6379`, so peers resolve as they do in Compose, to
//! `http://<name>:6379`. ECS has no ConfigMaps, so each task definition
//! carries its config, scripts inlined, as `CONFIG_JSON`. A collector of its
//! own ECS service receives every instance's telemetry and exports it to an
//! OTLP endpoint the stack takes as a parameter. Logs go to CloudWatch.
//! Parameters pick an existing VPC or make one, and optionally put one
//! service behind a public Application Load Balancer (gRPC over HTTPS).
//!
//! Its parts, one file each:
//!
//! - here: the options, and the template put together and bounded.
//! - `services`: the cluster, namespace, and a task definition, ECS service
//!   and log group per service; the collector; the poker.
//! - `collector`: the OpenTelemetry Collector's ECS service and config.
//! - `network`: the VPC (given or made), security groups and the ALB.

mod collector;
mod network;
mod services;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};

use super::{File, RenderArgs, yaml};
use crate::ecosystem::Ecosystem;

/// Settings of the ECS rendering.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EcsOptions {
    /// The default of the template's `ThespianImage` parameter, such as an
    /// ECR repository's `…/thespian:1.4`. Without it the stack asks for one.
    #[arg(long = "ecs-image", value_name = "IMAGE")]
    pub image: Option<String>,
}

/// The file the template is written to, under the output folder.
pub const TEMPLATE_FILE: &str = "cloudformation.yaml";

/// The most a registered task definition may weigh: ECS refuses larger
/// ones, and `CONFIG_JSON` is most of it.
pub const MAX_TASK_DEFINITION_BYTES: usize = 64 * 1024;

/// Room left in a task definition for what CloudFormation fills in at
/// deploy time (the image, ARNs, the region), which the rendered
/// template cannot measure.
const DEPLOY_TIME_ALLOWANCE: usize = 2 * 1024;

/// The most resources CloudFormation takes in one template.
pub const MAX_RESOURCES: usize = 500;

/// The largest template CloudFormation takes (from S3; 51,200 bytes when
/// passed inline).
pub const MAX_TEMPLATE_BYTES: usize = 1024 * 1024;

/// A template under construction: its sections, each in the order things
/// were added, so the rendering is the same on every run.
#[derive(Default)]
struct Template {
    parameters: Map<String, Value>,
    /// Parameter groups for the console: a label and its parameters.
    groups: Vec<(&'static str, Vec<&'static str>)>,
    rules: Map<String, Value>,
    conditions: Map<String, Value>,
    resources: Map<String, Value>,
    outputs: Map<String, Value>,
}

impl Template {
    fn parameter(&mut self, name: &str, parameter: Value) {
        self.parameters.insert(name.to_owned(), parameter);
    }

    fn condition(&mut self, name: &str, condition: Value) {
        self.conditions.insert(name.to_owned(), condition);
    }

    fn resource(&mut self, name: &str, resource: Value) {
        self.resources.insert(name.to_owned(), resource);
    }

    fn output(&mut self, name: &str, output: Value) {
        self.outputs.insert(name.to_owned(), output);
    }

    /// The whole template as one value, sections in CloudFormation's order.
    fn into_value(self, description: String) -> Map<String, Value> {
        let groups: Vec<Value> = self
            .groups
            .into_iter()
            .map(|(label, names)| json!({"Label": {"default": label}, "Parameters": names}))
            .collect();
        let mut template = Map::new();
        template.insert("AWSTemplateFormatVersion".into(), json!("2010-09-09"));
        template.insert("Description".into(), json!(description));
        template.insert(
            "Metadata".into(),
            json!({"AWS::CloudFormation::Interface": {"ParameterGroups": groups}}),
        );
        template.insert("Parameters".into(), Value::Object(self.parameters));
        template.insert("Rules".into(), Value::Object(self.rules));
        template.insert("Conditions".into(), Value::Object(self.conditions));
        template.insert("Resources".into(), Value::Object(self.resources));
        template.insert("Outputs".into(), Value::Object(self.outputs));
        template
    }
}

/// `{"Ref": name}`.
fn reference(name: &str) -> Value {
    json!({ "Ref": name })
}

/// `{"Fn::GetAtt": [resource, attribute]}`.
fn attribute(resource: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [resource, attribute] })
}

/// `{"Fn::Sub": text}`.
fn sub(text: &str) -> Value {
    json!({ "Fn::Sub": text })
}

/// `{"Fn::If": [condition, then, otherwise]}`.
fn when(condition: &str, then: Value, otherwise: Value) -> Value {
    json!({ "Fn::If": [condition, then, otherwise] })
}

/// `service` as a CloudFormation logical-ID stem: `orders-v2` is `OrdersV2`.
fn logical_id(service: &str) -> String {
    let mut id = String::with_capacity(service.len());
    let mut upper = true;
    for c in service.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            id.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            id.push(c);
        }
    }
    id
}

/// Renders `ecosystem` as one CloudFormation template, with the options
/// `args` gives.
pub(super) fn render(ecosystem: &Ecosystem, args: &RenderArgs) -> Result<Vec<File>, crate::Error> {
    let options = &args.ecs;
    services::check_names(ecosystem)?;
    let mut template = Template::default();
    services::add(&mut template, ecosystem, options)?;
    network::add(&mut template, ecosystem);
    let resources = template.resources.len();
    if resources > MAX_RESOURCES {
        return Err(format!(
            "{}: its ECS template would need {resources} resources, and CloudFormation takes at \
             most {MAX_RESOURCES} in one stack (each service needs 3): split the ecosystem",
            ecosystem.origin.display()
        )
        .into());
    }
    // The file's name, not its path: a description holds at most 1024 bytes.
    let file = ecosystem
        .origin
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    let description = format!(
        "Thespian ecosystem `{}` on ECS Fargate with Service Connect, rendered from {file}",
        ecosystem.name,
    );
    let contents = format!(
        "{}{}",
        header(ecosystem, args),
        yaml::to_string(&Value::Object(template.into_value(description)))
    );
    if contents.len() > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "{}: its ECS template would be {} bytes, and CloudFormation takes at most \
             {MAX_TEMPLATE_BYTES}: split the ecosystem or shorten its scripts",
            ecosystem.origin.display(),
            contents.len()
        )
        .into());
    }
    Ok(vec![File {
        path: TEMPLATE_FILE.into(),
        contents,
    }])
}

/// The comment at the top: where the template came from, how to make it
/// again, and how to deploy it.
fn header(ecosystem: &Ecosystem, args: &RenderArgs) -> String {
    let flags: Vec<String> = args
        .ecs
        .image
        .iter()
        .map(|image| format!("--ecs-image {image}"))
        .collect();
    format!(
        "{}#\n\
         # Deploy (a template over 51,200 bytes also needs --s3-bucket BUCKET):\n\
         #   aws cloudformation deploy --stack-name {name} --capabilities CAPABILITY_IAM \\\n\
         #     --template-file {template} \\\n\
         #     --parameter-overrides ThespianImage=IMAGE\n\
         \n",
        args.header("#", &flags),
        template = args.out.join(TEMPLATE_FILE).display(),
        name = ecosystem.name,
    )
}
