"""Config resolvers: rules that recipes share, written once instead of re-derived in every config header."""

from omegaconf import OmegaConf


def linear_lr(lr: float, at_batch: int, batch: int) -> float:
    """The learning rate for `batch` from one tuned at `at_batch` (Goyal et al.'s linear rule: SGD on a mean loss
    takes the same steps per image when the rate grows with the batch; the coupled weight decay `model.reg` stays).
    In a config: `lr: ${linear_lr:0.75,512,${data.batch_size}}`."""
    return lr * batch / at_batch


OmegaConf.register_new_resolver("linear_lr", linear_lr, replace=True)
