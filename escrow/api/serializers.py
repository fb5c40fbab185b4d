from __future__ import annotations

from typing import Any, ClassVar

from django.urls import reverse
from rest_framework import serializers

from escrow.models import Deposit


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


class DepositSerializer(serializers.ModelSerializer):
    """What a pipeline may know of its deposits: state, sizes, hashes, where copies are."""

    product = serializers.CharField(source="product.slug")
    status_url = serializers.SerializerMethodField()
    replicas = serializers.SerializerMethodField()
    acknowledgement = serializers.SerializerMethodField()

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
