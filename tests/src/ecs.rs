//! ECS set-up in moto for the tests: a cluster, task definition revisions and services, each
//! made with the calls the tests made by hand (a failing call panics).

use deploy_core::aws_sdk_ecs::Client;
use deploy_core::aws_sdk_ecs::operation::list_tags_for_resource::ListTagsForResourceOutput;
use deploy_core::aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
use deploy_core::aws_sdk_ecs::types::ContainerDefinition;
use deploy_core::aws_sdk_ecs::types::builders::ContainerDefinitionBuilder;

/// An ECS client aimed at moto.
pub async fn client() -> Client {
    deploy_core::aws::ecs(&crate::rig::moto_sdk().await)
}

/// Creates the cluster `name`.
pub async fn cluster(ecs: &Client, name: &str) {
    ecs.create_cluster()
        .cluster_name(name)
        .send()
        .await
        .unwrap();
}

/// A container `name` running `image` with 128 MiB, to finish with `.build()`.
pub fn container(name: &str, image: impl Into<String>) -> ContainerDefinitionBuilder {
    ContainerDefinition::builder()
        .name(name)
        .image(image)
        .memory(128)
}

/// Registers the next revision of `family`, running `container`.
pub async fn register(
    ecs: &Client,
    family: &str,
    container: ContainerDefinition,
) -> RegisterTaskDefinitionOutput {
    ecs.register_task_definition()
        .family(family)
        .container_definitions(container)
        .send()
        .await
        .unwrap()
}

/// Creates `service` in `cluster`, running `count` tasks of `task_definition`.
pub async fn service(
    ecs: &Client,
    cluster: &str,
    service: &str,
    task_definition: &str,
    count: i32,
) {
    ecs.create_service()
        .cluster(cluster)
        .service_name(service)
        .task_definition(task_definition)
        .desired_count(count)
        .send()
        .await
        .unwrap();
}

/// The cluster `cluster` with `service`: a revision of container `web` per image in `images`
/// (revision 1 the first), one task of revision 1 running.
pub async fn web_service(cluster: &str, service: &str, images: &[&str]) -> Client {
    let ecs = client().await;
    self::cluster(&ecs, cluster).await;
    for image in images {
        register(&ecs, service, container("web", *image).build()).await;
    }
    self::service(&ecs, cluster, service, &format!("{service}:1"), 1).await;
    ecs
}

/// The task definition `service` in `cluster` runs, as DescribeServices gives it.
pub async fn running(ecs: &Client, cluster: &str, service: &str) -> String {
    ecs.describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .unwrap()
        .services()[0]
        .task_definition()
        .unwrap()
        .to_owned()
}

/// The tags of `task_definition`, read with ListTagsForResource on its ARN.
pub async fn tags(ecs: &Client, task_definition: &str) -> ListTagsForResourceOutput {
    let arn = ecs
        .describe_task_definition()
        .task_definition(task_definition)
        .send()
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_owned();
    ecs.list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap()
}

/// The tags of `task_definition` (key, value), as DescribeTaskDefinition includes them.
pub async fn described_tags(ecs: &Client, task_definition: &str) -> Vec<(String, String)> {
    let out = ecs
        .describe_task_definition()
        .task_definition(task_definition)
        .include(deploy_core::aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    out.tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect()
}
