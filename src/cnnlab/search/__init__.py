"""Learning the layer list (the seed's planned next step) or a recipe's knobs: the plan (`plan`), the kinds of space,
agent and pruner (`spaces/`, `agents/`, `pruners/`: registries), the study that trains every trial (`study`, its worker
processes in `workers`), and what it leaves behind (`outputs`, `handover`)."""
