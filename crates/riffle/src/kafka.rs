//! The Kafka flags `ingest`, `lag` and `check` share (`--brokers`, `--topic`,
//! `--group-id`, overriding a source's own), and the consumer group as the broker sees it,
//! sampled for `lag` and `check` (`riffle_ingest::feed::kafka::source::group`), in the shape the
//! operator toolkit judges (`riffle_ops::lag::BrokerView`).

use std::time::Duration;

use clap::Args;
use riffle_ingest::feed::kafka::source::group::GroupProbe;
use riffle_ingest::feed::kafka::source::KafkaConfig;
use riffle_ops::lag::{BrokerMember, BrokerPartition, BrokerView};
use riffle_registry::Registry;

/// How long sampling the consumer group may take.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Default, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (overrides the source's `brokers`).
    #[arg(long, value_name = "HOST:PORT,…")]
    pub brokers: Option<String>,
    /// Kafka topic (overrides the source's `topic`).
    #[arg(long, value_name = "NAME")]
    pub topic: Option<String>,
    /// Kafka consumer group (overrides the source's `group_id`; default `riffle-<source>`).
    #[arg(long, value_name = "NAME")]
    pub group_id: Option<String>,
}

impl KafkaArgs {
    /// The Kafka settings of source `source` with the overrides; `None` when it is not a
    /// Kafka source and `--brokers` and `--topic` do not make it one.
    pub fn config_for(&self, registry: &Registry, source: usize) -> Option<KafkaConfig> {
        let src = registry.sources.get(source)?;
        let mut config = match KafkaConfig::from_source(&src.kind) {
            Some(config) => config,
            None => {
                let (brokers, topic) = (self.brokers.as_ref()?, self.topic.as_ref()?);
                KafkaConfig::new(brokers, topic, &format!("riffle-{}", src.name))
            }
        };
        if let Some(brokers) = &self.brokers {
            config.brokers.clone_from(brokers);
        }
        if let Some(topic) = &self.topic {
            config.topic.clone_from(topic);
        }
        if let Some(group) = &self.group_id {
            config.group_id.clone_from(group);
        }
        Some(config)
    }
}

/// The consumer group of `config` as the broker sees it now; `Err` says why it could not
/// be read.
pub async fn sample(config: &KafkaConfig) -> Result<BrokerView, String> {
    let config = config.clone();
    let sampled = tokio::task::spawn_blocking(move || {
        let probe = GroupProbe::connect(&config).map_err(|e| e.to_string())?;
        probe.sample(SAMPLE_TIMEOUT).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("the group sampler failed: {e}"))??;
    let now = riffle_core::Timestamp::now().millis();
    Ok(BrokerView {
        topic: sampled.topic.clone(),
        group: sampled.group.clone(),
        state: sampled.state.clone(),
        members: sampled
            .members
            .iter()
            .map(|m| BrokerMember {
                name: m.name(),
                partitions: m.partitions.iter().map(|&p| p as u32).collect(),
            })
            .collect(),
        partitions: sampled
            .partitions
            .iter()
            .map(|p| BrokerPartition {
                partition: p.partition as u32,
                end_offset: p.end_offset,
                committed: p.committed,
                lag_messages: p.lag_messages(),
                lag: p.lag_at(now),
                owner: sampled.owner_of(p.partition).map(|m| m.name()),
            })
            .collect(),
    })
}
