"""The commands of ``rlgrad``, each module holding a command's parser next to its handler.

A module's ``add_NAME(commands)`` adds the command to the ``rlgrad`` subparsers and sets
``run=run_NAME``, the handler that ``rlgrad.app.cli.main`` calls with the parsed arguments.

=================  ==========================================
module             commands
=================  ==========================================
``teaching``       ``examples``, ``tour``
``course``         ``course``
``docs``           ``docs``
``study``          ``study``
``train``          ``train``, ``eval``, ``presets``
``plots``          ``plot``, ``taylor``
``sweep``          ``sweep``
``report``         ``report``
``tune``           ``tune``
``grpo_demo``      ``grpo-demo``
``common``         the preset rule, missing extras, Ray options
=================  ==========================================
"""

from __future__ import annotations

from rlgrad.app.commands.course import add_course
from rlgrad.app.commands.docs import add_docs
from rlgrad.app.commands.grpo_demo import add_grpo_demo
from rlgrad.app.commands.plots import add_plot, add_taylor
from rlgrad.app.commands.report import add_report
from rlgrad.app.commands.study import add_study
from rlgrad.app.commands.sweep import add_sweep
from rlgrad.app.commands.teaching import add_examples, add_tour
from rlgrad.app.commands.train import add_eval, add_presets, add_train
from rlgrad.app.commands.tune import add_tune

# in the order `rlgrad --help` lists them
ADDERS = (
    add_examples,
    add_study,
    add_tour,
    add_course,
    add_docs,
    add_train,
    add_eval,
    add_plot,
    add_taylor,
    add_sweep,
    add_report,
    add_tune,
    add_presets,
    add_grpo_demo,
)
