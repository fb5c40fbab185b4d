from __future__ import annotations

from typing import Any, ClassVar

from django.urls import reverse
from rest_framework import serializers

from escrow.models import Deposit
from verification.selectors import verification_for


class ReplicaSerializer(serializers.Serializer):
    site = serializers.CharField()
    kind = serializers.CharField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    verified_at = serializers.DateTimeField(allow_null=True)


class AcknowledgementSerializer(serializers.Serializer):
    notary = serializers.CharField(source="notary.full_name")
    acknowledged_at = serializers.DateTimeField()
    manifest_sha256 = serializers.CharField()
    receipt_signature = serializers.CharField(source="signature")


class ArtefactSerializer(serializers.Serializer):
    path = serializers.CharField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()


class VerificationSerializer(serializers.Serializer):
    """The deposit's build verification (docs/verification.md): rebuilt in a sandbox
    without network on the machine that received it, after it was stored."""

    state = serializers.CharField(
        help_text="pending, running, passed, failed, timed_out, no_recipe, busy, interrupted"
    )
    outcome = serializers.CharField(source="badge_label", help_text="The state in words.")
    problem = serializers.CharField(help_text="Why it was not verified, or what stopped it.")
    exit_code = serializers.IntegerField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    artefacts = ArtefactSerializer(many=True)
    log_tail = serializers.CharField(help_text="The last lines of the build log.")


class DepositSerializer(serializers.ModelSerializer):
    """What a pipeline may know of its deposits: state, sizes, hashes, where copies are."""

    product = serializers.CharField(source="product.slug")
    status_url = serializers.SerializerMethodField()
    replicas = serializers.SerializerMethodField()
    acknowledgement = serializers.SerializerMethodField()
    verification = serializers.SerializerMethodField()

    class Meta:
        model = Deposit
        fields: ClassVar = [
            "id",
            "product",
            "version",
            "state",
            "problem",
            "status_url",
            "archive_sha256",
            "archive_size",
            "ciphertext_sha256",
            "ciphertext_size",
            "manifest_sha256",
            "manifest",
            "pipeline",
            "replicas",
            "acknowledgement",
            "verification",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_status_url(self, deposit: Deposit) -> str:
        request = self.context.get("request")
        path = reverse("api:deposit-status", kwargs={"deposit_id": deposit.pk})
        return request.build_absolute_uri(path) if request is not None else path

    def get_replicas(self, deposit: Deposit) -> list[dict[str, Any]]:
        return ReplicaSerializer(deposit.copies.all(), many=True).data  # type: ignore[return-value]

    def get_acknowledgement(self, deposit: Deposit) -> dict[str, Any] | None:
        acknowledgement = getattr(deposit, "acknowledgement", None)
        if acknowledgement is None:
            return None
        return AcknowledgementSerializer(acknowledgement).data

    def get_verification(self, deposit: Deposit) -> dict[str, Any] | None:
        record = verification_for(deposit.pk)
        return None if record is None else VerificationSerializer(record).data
