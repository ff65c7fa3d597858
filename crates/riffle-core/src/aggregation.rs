//! The kinds of window aggregation: what a stream feature computes over the events in its
//! window. The registry declares them, the window engine computes them.

/// What an aggregation computes over the events in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregationKind {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    Last,
    DistinctCount,
}

impl AggregationKind {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "count" => Self::Count,
            "sum" => Self::Sum,
            "mean" => Self::Mean,
            "min" => Self::Min,
            "max" => Self::Max,
            "last" => Self::Last,
            "distinct_count" => Self::DistinctCount,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Mean => "mean",
            Self::Min => "min",
            Self::Max => "max",
            Self::Last => "last",
            Self::DistinctCount => "distinct_count",
        }
    }

    /// Whether the field must hold a number (`sum`, `mean`, `min`, `max`).
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Sum | Self::Mean | Self::Min | Self::Max)
    }

    /// Whether a field is required (every kind but `count`).
    pub fn needs_field(self) -> bool {
        self != Self::Count
    }
}

impl std::fmt::Display for AggregationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
