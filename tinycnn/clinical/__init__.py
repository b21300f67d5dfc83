"""Clinical semantics of a diagnosis model: which class is positive, the operating point, and
the metrics of each task (binary, multi-class, ordinal grades, multi-label).

- :mod:`.positive`: the positive class of a binary task (:func:`choose_positive`).
- :mod:`.labels`: labels as the model reads them; a binary model's output is P(positive class)
  (:func:`training_view`, :func:`targets`, :func:`binary_classes`).
- :mod:`.operating_point`: the decision threshold chosen on validation, stored and used
  (:func:`choose_threshold`, :func:`threshold_in_use`).
- :mod:`.model_file`: the metadata keys a trained model stores about its meaning (:func:`semantics`).
- :mod:`.evaluation`: a model judged on labelled data, and its text (:func:`evaluate`,
  :func:`format_report`).
"""

from .evaluation import evaluate, format_report
from .labels import binary_classes, output_names, targets, training_view
from .model_file import semantics
from .operating_point import check_target_sensitivity, choose_threshold, stored_threshold, threshold_in_use
from .positive import (
    NEGATIVE_WORDS,
    Positive,
    PositiveClassWarning,
    choose_positive,
    find_class,
    is_negative_name,
)

__all__ = ["NEGATIVE_WORDS", "Positive", "PositiveClassWarning", "binary_classes", "check_target_sensitivity",
           "choose_positive", "choose_threshold", "evaluate", "find_class", "format_report", "is_negative_name",
           "output_names", "semantics", "stored_threshold", "targets", "threshold_in_use", "training_view"]
