"""POST /api/v1/autoscaling/simulate: what would the autoscaler decide for this case?"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends

from gs_engine.api.auth import require_token
from gs_engine.autoscaling.simulate import simulate

router = APIRouter(prefix="/api/v1/autoscaling", dependencies=[Depends(require_token)], tags=["autoscaling"])


@router.post("/simulate", summary="Run the HPA, KPA or VPA decider on a JSON case and return its decision")
async def simulate_case(case: dict[str, Any] = Body(...)) -> dict[str, Any]:
    return simulate(case)
