"""What a trained diagnosis model stores about the meaning of its outputs (model-file metadata).

Keys written by :func:`semantics` (besides ``image_size``, ``channels``, ``task``,
``value_range`` that the pipeline stores):

- ``class_names``: the classes in the data's label order (MedMNIST's names for its files);
- binary tasks: ``positive_class`` (the class whose probability the one output is),
  ``positive_rule`` (how it was chosen), ``decision_threshold`` (the operating point, chosen
  on the validation part) and ``threshold_rule`` (how);
- ``ordinal``: true for ordered grades (RetinaMNIST); ``dataset``: the MedMNIST data set the
  class names came from.

No key holds an image, a label, a file name or a patient identifier.
"""

from .operating_point import check_target_sensitivity, operating_point


def semantics(model, data, view, positive=None, target_sensitivity=None):
    """The metadata above for ``model`` trained on ``view`` (:func:`~tinycnn.clinical.training_view` of ``data``).

    Parameters
    ----------
    model : Sequential
        Trained; binary models are run on ``view.val`` to choose the threshold.
    data, view : DataSplits
        The data as loaded (its class order is stored) and the view the model was trained on.
    positive : Positive, optional
        Binary tasks: the positive class.
    target_sensitivity : float in (0, 1], optional
        Binary tasks: choose the highest threshold reaching it on validation (default Youden's J).

    Returns
    -------
    dict
    """
    target_sensitivity = check_target_sensitivity(target_sensitivity)
    meta = {"class_names": [str(c) for c in data.class_names]}
    if positive is not None:
        meta.update(positive_class=positive.name, positive_rule=positive.rule)
        meta.update(operating_point(model, view.val, target_sensitivity, positive.name))
    if data.ordinal:
        meta["ordinal"] = True
    if data.dataset:
        meta["dataset"] = data.dataset
    return meta
