from django.apps import AppConfig


class RewardsConfig(AppConfig):
    name = "spatiallab.rewards"
    label = "rewards"
    verbose_name = "Reward-model training runs"

    def ready(self) -> None:
        from spatiallab.jobs.services import job_ended
        from spatiallab.rewards.scoring import jobs_ended_mark_score_requests
        from spatiallab.rewards.services import jobs_ended_mark_evaluations, jobs_ended_mark_runs

        job_ended.connect(jobs_ended_mark_runs, dispatch_uid="rewards-job-ended")
        job_ended.connect(jobs_ended_mark_evaluations, dispatch_uid="reward-evaluations-job-ended")
        job_ended.connect(jobs_ended_mark_score_requests, dispatch_uid="score-requests-job-ended")
