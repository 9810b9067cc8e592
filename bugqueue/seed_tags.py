"""The seed of the curated tag list (plain data: migration 0002 and tags_seed use it): failure
types reported by the ML engineers of the interview study (Shankar et al., CSCW 2024)."""

SEED_TAGS = [
    (
        "data_leakage",
        "Data leakage",
        "Information from outside the training window (the label, the future, the test set) reached the features, "
        "so offline metrics overstate production performance.",
    ),
    (
        "label_flip",
        "Label flip",
        "Labels were swapped or inverted for some items (a class mapping changed, annotators used the wrong key), "
        "so the model learned or is scored against the opposite label.",
    ),
    (
        "dropped_special_characters",
        "Dropped special characters",
        "Preprocessing lost accents, emoji, non-Latin script or punctuation, so inputs reach the model mangled.",
    ),
    (
        "corrupted_imputation",
        "Corrupted imputation",
        "Missing values were filled with wrong defaults or stale statistics, so imputed features mislead the model.",
    ),
    (
        "missing_feature_values",
        "Missing feature values",
        "A feature arrives empty or null in production (a join failed, an upstream field was dropped).",
    ),
    (
        "schema_change",
        "Schema change",
        "An upstream table or event changed its columns, types or units, and the pipeline silently misreads it.",
    ),
    (
        "data_drift",
        "Data drift",
        "The production input distribution moved away from the training data (new customers, seasons, products).",
    ),
    (
        "feedback_delay",
        "Feedback delay",
        "Ground truth arrives too late to measure live performance or to catch failures in time.",
    ),
    (
        "copy_paste_anomaly",
        "Copy-paste anomaly",
        "Duplicated or templated inputs (copied rows, boilerplate text) distort training or evaluation.",
    ),
    (
        "unset_random_seed",
        "Unset random seed",
        "A training or sampling step ran without a fixed seed, so results cannot be reproduced or compared.",
    ),
]
