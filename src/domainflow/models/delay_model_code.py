"""MLflow "models from code" entry: logged with each model and run when it is loaded."""

import mlflow

from domainflow.models.pyfunc import DelayModel

mlflow.models.set_model(DelayModel())
