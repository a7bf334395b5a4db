"""Billing, AI providers, renders and child jobs: thin wrappers over their WIT imports.

Every one is journaled by the host, so a replay never pays, renders or enqueues twice. Waits
(``await_children``, ``await_human``, renders) suspend the job: the host drops the instance and
replays the workflow from the start once the answer exists.
"""

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from wit_world.imports import billing, jobs, providers, remotion, speech, types

from .errors import TemplateError, call_import, parse_json

_PROVIDERS = {p.name.lower(): p for p in types.Provider}
_VOICE_PROVIDERS = {p.name.lower(): p for p in speech.VoiceProvider}
_EVENT_TYPES = {e.name.lower().replace("_", "-"): e for e in billing.EventType}


def provider_enum(name: str) -> types.Provider:
    """``"openai"``, ``"gemini"``, ``"openrouter"`` or ``"perplexity"`` as the WIT enum."""
    try:
        return _PROVIDERS[name]
    except KeyError:
        raise TemplateError("unknown_provider", f"no provider `{name}` (one of {sorted(_PROVIDERS)})") from None


def _spoken(spoken: Any) -> Dict[str, Any]:
    """A speech answer as templates receive it."""
    return {
        "key": spoken.key,
        "url": spoken.url,
        "size": spoken.size,
        "content_type": spoken.content_type,
        "duration_seconds": spoken.duration_seconds,
    }


def provider_name(value: types.Provider) -> str:
    return value.name.lower()


class Billing:
    def record(
        self,
        event_type: str,
        cost_usd: float,
        charge_usd: Optional[float] = None,
        provider: Optional[str] = None,
        model: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> None:
        """Record a billable event (``event_type``: ai-generation, render, storage-write, cpu-estimate,
        egress). A charge past the customer's limit ends the run."""
        if event_type not in _EVENT_TYPES:
            raise TemplateError("billing_invalid_event", f"no billing event type `{event_type}`")
        event = billing.BillingEvent(
            event_type=_EVENT_TYPES[event_type],
            cost_usd=float(cost_usd),
            charge_usd=None if charge_usd is None else float(charge_usd),
            provider=None if provider is None else provider_enum(provider),
            model=model,
            metadata=json.dumps(metadata or {}),
        )
        call_import(lambda: billing.record(event))


@dataclass(frozen=True)
class TextResponse:
    text: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int


class Providers:
    """AI providers through the customer's leased keys: rate-limited, billed and journaled."""

    def generate_text(
        self,
        provider: str,
        model: str,
        prompt: str,
        system: Optional[str] = None,
        temperature: Optional[float] = None,
        max_output_tokens: Optional[int] = None,
    ) -> TextResponse:
        request = providers.TextRequest(
            provider=provider_enum(provider),
            model=model,
            prompt=prompt,
            system=system,
            temperature=temperature,
            max_output_tokens=max_output_tokens,
        )
        answer = call_import(lambda: providers.generate_text(request))
        return TextResponse(
            text=answer.text,
            provider=provider_name(answer.provider),
            model=answer.model,
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
        )

    def generate_image(self, provider: str, model: str, prompt: str, size: Optional[str] = None):
        """The image as ``providers.ImageResponse`` (``bytes``, ``content_type``, ``revised_prompt``)."""
        request = providers.ImageRequest(provider=provider_enum(provider), model=model, prompt=prompt, size=size)
        return call_import(lambda: providers.generate_image(request))

    def analyze_image_layout(self, provider: str, model: str, image_url: str, overlay_text: str) -> Dict[str, Any]:
        request = providers.LayoutRequest(
            provider=provider_enum(provider), model=model, image_url=image_url, overlay_text=overlay_text
        )
        layout = call_import(lambda: providers.analyze_image_layout(request))
        return {
            "zone": layout.zone.name.lower(),
            "align": layout.align.name.lower(),
            "max_width_percent": layout.max_width_percent,
            "justification": layout.justification,
        }

    def generate_speech(
        self,
        provider: str,
        model: str,
        text: str,
        voice: str,
        key: str,
        instructions: Optional[str] = None,
        voice_settings: Optional[Dict[str, Any]] = None,
        seed: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Text to speech (``openai``, ``gemini`` or ``elevenlabs``): the host stores the audio (a
        WAV) at ``key`` under the job's prefix. ``voice_settings`` and ``seed`` are ElevenLabs'.
        Returns ``key``, ``url``, ``size``, ``content_type`` and ``duration_seconds``."""
        if provider in _VOICE_PROVIDERS:
            spoken = call_import(
                lambda: speech.speak(
                    speech.SpeakRequest(
                        provider=_VOICE_PROVIDERS[provider],
                        model=model,
                        text=text,
                        voice=voice,
                        key=key,
                        instructions=instructions,
                        voice_settings=None if voice_settings is None else json.dumps(voice_settings),
                        seed=seed,
                    )
                )
            )
        else:
            # Not a voice provider: the host says so (``provider_unsupported``).
            request = providers.SpeechRequest(
                provider=provider_enum(provider), model=model, text=text, voice=voice, key=key, instructions=instructions
            )
            spoken = call_import(lambda: providers.generate_speech(request))
        return _spoken(spoken)

    def narrate(
        self,
        provider: str,
        model: str,
        text: str,
        voice: str,
        key: str,
        voice_settings: Optional[Dict[str, Any]] = None,
        seed: Optional[int] = None,
    ) -> Dict[str, Any]:
        """A long text (up to 50,000 characters) read aloud by ``elevenlabs`` into one WAV at
        ``key``: the job suspends while the host speaks it in parts and joins them, then resumes.
        Returns ``key``, ``url``, ``size``, ``content_type`` and ``duration_seconds``."""
        if provider not in _VOICE_PROVIDERS:
            raise TemplateError("unknown_provider", f"no voice provider `{provider}` (one of {sorted(_VOICE_PROVIDERS)})")
        request = speech.NarrationRequest(
            provider=_VOICE_PROVIDERS[provider],
            model=model,
            text=text,
            voice=voice,
            key=key,
            voice_settings=None if voice_settings is None else json.dumps(voice_settings),
            seed=seed,
        )
        spoken = call_import(lambda: speech.narrate(request))
        return _spoken(spoken)

    def generate_video(
        self,
        provider: str,
        model: str,
        prompt: str,
        duration_seconds: int,
        aspect_ratio: str = "16:9",
        negative_prompt: Optional[str] = None,
        output_key: Optional[str] = None,
    ) -> Dict[str, Any]:
        """A video clip the provider generates (minutes): the job suspends while the host submits,
        polls and stores it, then resumes with it; never submitted or paid twice. Returns
        ``generation_id``, ``output_key``, ``output_url`` and ``metadata``."""
        request = providers.VideoRequest(
            provider=provider_enum(provider),
            model=model,
            prompt=prompt,
            duration_seconds=duration_seconds,
            aspect_ratio=aspect_ratio,
            negative_prompt=negative_prompt,
            output_key=output_key,
        )
        made = call_import(lambda: providers.generate_video(request))
        return {
            "generation_id": made.generation_id,
            "output_key": made.output_key,
            "output_url": made.output_url,
            "metadata": parse_json(made.metadata or "{}", "generation metadata"),
        }


def _render_result(result: remotion.RenderResult) -> Dict[str, Any]:
    return {
        "render_id": result.render_id,
        "output_key": result.output_key,
        "output_url": result.output_url,
        "metadata": parse_json(result.metadata or "{}", "render metadata"),
    }


class Remotion:
    """Renders: the job suspends while one runs, and replays with the result when it ends."""

    def render(
        self,
        composition_id: str,
        input_props: Optional[Dict[str, Any]] = None,
        serve_url: Optional[str] = None,
        entry_point: Optional[str] = None,
        output_key: Optional[str] = None,
    ) -> Dict[str, Any]:
        request = remotion.RenderRequest(
            composition_id=composition_id,
            serve_url=serve_url,
            entry_point=entry_point,
            output_key=output_key,
            input_props=json.dumps(input_props or {}),
        )
        return _render_result(call_import(lambda: remotion.render(request)))

    def render_spec(self, spec: Any, output_key: Optional[str] = None) -> Dict[str, Any]:
        """Render a JSON video spec (canvas, background tracks, audio tracks) with FFmpeg."""
        return _render_result(call_import(lambda: remotion.render_spec(json.dumps(spec), output_key)))


@dataclass(frozen=True)
class ChildResult:
    job_id: str
    #: ``"succeeded"``, ``"failed"`` or ``"cancelled"``.
    status: str
    output: Any = None
    error: Optional[TemplateError] = None


class Jobs:
    def enqueue_child(
        self, operation: str, payload: Any, workflow: Optional[str] = None, provider_hint: Optional[str] = None
    ) -> str:
        """Enqueue a child running ``operation`` of this template; returns its job id."""
        request = jobs.ChildRequest(
            operation=operation,
            workflow=workflow,
            payload=json.dumps(payload if payload is not None else {}),
            provider_hint=None if provider_hint is None else provider_enum(provider_hint),
        )
        return call_import(lambda: jobs.enqueue_child(request))

    def await_children(self, ids: List[str]) -> List[ChildResult]:
        """The children's results in order; the job suspends until every one has ended."""
        results = []
        for child in call_import(lambda: jobs.await_children(list(ids))):
            outcome = child.outcome
            if isinstance(outcome, jobs.ChildOutcome_Succeeded):
                output = parse_json(outcome.value, f"the output of child {child.job_id}")
                results.append(ChildResult(child.job_id, "succeeded", output=output))
            elif isinstance(outcome, jobs.ChildOutcome_Failed):
                results.append(ChildResult(child.job_id, "failed", error=TemplateError.from_wit(outcome.value)))
            else:
                results.append(ChildResult(child.job_id, "cancelled"))
        return results

    def await_outputs(self, ids: List[str]) -> List[Any]:
        """The children's outputs in order; the first failed or cancelled child fails this workflow."""
        outputs = []
        for child in self.await_children(ids):
            if child.status == "failed" and child.error is not None:
                raise child.error
            if child.status != "succeeded":
                raise TemplateError("child_cancelled", f"child {child.job_id} was cancelled")
            outputs.append(child.output)
        return outputs

    def await_human(self, prompt: Any) -> Any:
        """Ask a human; the job suspends until ``POST .../jobs/:id/resume``, whose body this returns."""
        answer = call_import(lambda: jobs.await_human(json.dumps(prompt)))
        try:
            return json.loads(answer)
        except ValueError as e:
            raise TemplateError("invalid_human_answer", str(e)) from None
