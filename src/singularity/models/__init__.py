"""Models for the bake-off: LightGBM, a Transformer, a logistic baseline; purged CV.

    singularity.labels.triple_barrier          labels with end times (purging needs them)
    singularity.models.cv                      PurgedWalkForward, PurgedKFold, CombinatorialPurgedCV
    singularity.models.baseline                LogisticBaseline
    singularity.models.lgbm                    LightGBMClassifier
    singularity.models.transformer             TransformerClassifier, past_windows
    singularity.models.bakeoff                 run_bakeoff -> BakeoffResult (oof_signal,
                                               predict_walk_forward, to_json_dict)
    singularity.models.artifacts               save_artifacts, data_fingerprint

Modules are imported on use: torch and lightgbm load only when their model is asked for.
"""
