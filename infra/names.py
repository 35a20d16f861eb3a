"""Resource names and ARNs of one deployment, derived from its name (no API calls)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# The functions the state machine invokes (infra/iam.py grants it InvokeFunction on these).
FUNCTION_ROLES = ("plan", "download", "consolidate")
# The function behind the HTTP API's job route (invoked by API Gateway, never the state machine).
SUBMIT = "submit"
LAMBDA_ROLES = (*FUNCTION_ROLES, SUBMIT)
ROLE_PURPOSES = (*LAMBDA_ROLES, "statemachine")
# Roles older deployments made that deploy now deletes and teardown still finds: "api", the
# credentials role of the API's former StartExecution integration (the route now invokes
# the submit Lambda under a resource-based permission, no role of ours).
FORMER_ROLE_PURPOSES = ("api",)
TAG_KEY = "imgflow:deployment"


@dataclass(frozen=True)
class Names:
    """Every name and ARN of deployment `deployment` in `account` / `region`."""

    deployment: str
    account: str
    region: str
    partition: str = "aws"

    @property
    def bucket(self) -> str:
        """The image bucket (globally unique: a digest of account and region)."""
        digest = hashlib.sha256(f"{self.account}/{self.region}".encode()).hexdigest()[:8]
        return f"{self.deployment}-images-{digest}"

    @property
    def table(self) -> str:
        """The DynamoDB index table."""
        return f"{self.deployment}-index"

    @property
    def topic(self) -> str:
        """The SNS failure topic."""
        return f"{self.deployment}-failures"

    @property
    def state_machine(self) -> str:
        """The Step Functions state machine."""
        return f"{self.deployment}-pipeline"

    @property
    def api(self) -> str:
        """The HTTP API."""
        return f"{self.deployment}-api"

    def function(self, role: str) -> str:
        """The Lambda function for `role` (plan, download, consolidate or submit)."""
        return f"{self.deployment}-{role}"

    def role(self, purpose: str) -> str:
        """The IAM role for `purpose` (a function role, "statemachine", or a former one)."""
        return f"{self.deployment}-{purpose}"

    def _arn(self, service: str, resource: str, *, region: bool = True) -> str:
        where = self.region if region else ""
        return f"arn:{self.partition}:{service}:{where}:{self.account}:{resource}"

    @property
    def bucket_arn(self) -> str:
        """The bucket's ARN."""
        return f"arn:{self.partition}:s3:::{self.bucket}"

    @property
    def table_arn(self) -> str:
        """The table's ARN."""
        return self._arn("dynamodb", f"table/{self.table}")

    @property
    def topic_arn(self) -> str:
        """The topic's ARN."""
        return self._arn("sns", self.topic)

    @property
    def state_machine_arn(self) -> str:
        """The state machine's ARN."""
        return self._arn("states", f"stateMachine:{self.state_machine}")

    @property
    def executions_arn(self) -> str:
        """A pattern matching every execution of the state machine."""
        return self._arn("states", f"execution:{self.state_machine}:*")

    def function_arn(self, role: str) -> str:
        """The ARN of the function for `role`."""
        return self._arn("lambda", f"function:{self.function(role)}")

    def role_arn(self, purpose: str) -> str:
        """The ARN of the IAM role for `purpose`."""
        return self._arn("iam", f"role/{self.role(purpose)}", region=False)

    def log_group(self, role: str) -> str:
        """The CloudWatch Logs group Lambda writes the function for `role`'s logs to."""
        return f"/aws/lambda/{self.function(role)}"

    def log_group_arn(self, role: str) -> str:
        """The ARN of the log group of the function for `role` (as tagging calls want it)."""
        return self._arn("logs", f"log-group:{self.log_group(role)}")

    @property
    def state_machine_log_group(self) -> str:
        """The log group the state machine logs to (the /aws/vendedlogs/ prefix AWS
        recommends, so the log delivery's resource policy stays small)."""
        return f"/aws/vendedlogs/states/{self.state_machine}"

    @property
    def state_machine_log_group_arn(self) -> str:
        """The ARN of the state machine's log group."""
        return self._arn("logs", f"log-group:{self.state_machine_log_group}")
