"""The training parameters the engine tests share (``train.fit``'s ``train_params``), small and fast."""


def train_params(**overrides) -> dict:
    """The project's training protocol at test size (lr 1e-2, batch 16, 5 epochs); ``overrides`` win."""
    tp = dict(
        lr=1.0e-2,
        batch_size=16,
        max_epochs=5,
        lr_factor=0.2,
        lr_patience=3,
        min_lr=1.0e-6,
        early_stopping_patience=12,
        mixed_precision=False,
    )
    tp.update(overrides)
    return tp
