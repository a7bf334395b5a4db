import React from 'react';
import {AbsoluteFill, Audio, Img, Sequence, interpolate, spring, useCurrentFrame, useVideoConfig} from 'remotion';

/** One scene: a full-bleed image, its line shown word by word as it is spoken, its narration. */
export type UgcScene = {imageUrl: string; text?: string; audioUrl?: string; durationSeconds: number};

export type UgcProps = {width: number; height: number; fps: number; title?: string; scenes: UgcScene[]};

const fail = (field: string, problem: string): never => {
	throw new Error(`Invalid input props for UgcVideo: ${field} ${problem}`);
};

/** The props checked and normalised: what a render of this template may be asked for. */
export const checkProps = (props: Partial<UgcProps>): UgcProps => {
	// Any size the template's schema allows; H.264 needs even sides, so an odd one is rounded up.
	const size = (field: 'width' | 'height', fallback: number) => {
		const v = props[field] ?? fallback;
		return Number.isInteger(v) && v >= 16 && v <= 3840 ? v + (v % 2) : fail(field, 'must be an integer from 16 to 3840');
	};
	const fps = props.fps ?? 30;
	if (!Number.isInteger(fps) || fps < 1 || fps > 60) fail('fps', 'must be an integer from 1 to 60');
	if (!Array.isArray(props.scenes) || props.scenes.length < 1 || props.scenes.length > 12) {
		fail('scenes', 'must be a list of 1 to 12 scenes');
	}
	const scenes = (props.scenes ?? []).map((s, i) => {
		if (typeof s?.imageUrl !== 'string' || s.imageUrl === '') fail(`scenes[${i}].imageUrl`, 'must be a URL');
		if (!(s.durationSeconds > 0 && s.durationSeconds <= 600)) fail(`scenes[${i}].durationSeconds`, 'must be above 0 and at most 600');
		for (const field of ['text', 'audioUrl'] as const) {
			if (s[field] !== undefined && typeof s[field] !== 'string') fail(`scenes[${i}].${field}`, 'must be a string');
		}
		return {imageUrl: s.imageUrl, text: s.text, audioUrl: s.audioUrl, durationSeconds: s.durationSeconds};
	});
	if (props.title !== undefined && typeof props.title !== 'string') fail('title', 'must be a string');
	return {width: size('width', 720), height: size('height', 1280), fps, title: props.title, scenes};
};

/** The line's words appear one after another over the first 80 % of the scene, as a voice reads. */
const SpokenLine: React.FC<{text: string; frames: number}> = ({text, frames}) => {
	const frame = useCurrentFrame();
	const {height} = useVideoConfig();
	const words = text.split(/\s+/).filter(Boolean);
	const shown = Math.min(words.length, Math.floor((frame / Math.max(1, frames * 0.8)) * words.length) + 1);
	const fontSize = Math.round(height * 0.042);
	return (
		<AbsoluteFill style={{justifyContent: 'flex-end', alignItems: 'center', paddingBottom: Math.round(height * 0.16)}}>
			<div
				style={{
					width: '84%',
					textAlign: 'center',
					fontFamily: '"DejaVu Sans", "Liberation Sans", Arial, sans-serif',
					fontWeight: 800,
					fontSize,
					lineHeight: 1.3,
					color: 'white',
					WebkitTextStroke: `${Math.max(1, Math.round(fontSize / 14))}px black`,
					textShadow: '0 3px 8px rgba(0, 0, 0, 0.9)',
				}}
			>
				{words.map((word, i) => (
					<span key={i} style={{opacity: i < shown ? 1 : 0, color: i === shown - 1 ? '#ffe066' : 'white'}}>
						{word}{' '}
					</span>
				))}
			</div>
		</AbsoluteFill>
	);
};

/** The hook: the title pops in at the top of the first scene, as creators open a clip. */
const Hook: React.FC<{title: string}> = ({title}) => {
	const frame = useCurrentFrame();
	const {fps, height} = useVideoConfig();
	// From 60 % to full size: the first frame (the thumbnail) already shows the hook.
	const pop = 0.6 + 0.4 * spring({frame, fps, config: {damping: 12}});
	return (
		<AbsoluteFill style={{justifyContent: 'flex-start', alignItems: 'center', paddingTop: Math.round(height * 0.08)}}>
			<div
				style={{
					transform: `scale(${pop})`,
					maxWidth: '88%',
					padding: `${Math.round(height * 0.012)}px ${Math.round(height * 0.02)}px`,
					borderRadius: Math.round(height * 0.012),
					backgroundColor: '#ff3d6e',
					color: 'white',
					fontFamily: '"DejaVu Sans", "Liberation Sans", Arial, sans-serif',
					fontWeight: 900,
					fontSize: Math.round(height * 0.036),
					textAlign: 'center',
				}}
			>
				{title}
			</div>
		</AbsoluteFill>
	);
};

const Scene: React.FC<{scene: UgcScene; frames: number}> = ({scene, frames}) => {
	const frame = useCurrentFrame();
	// A handheld feel: a slow push in with a slight drift.
	const zoom = interpolate(frame, [0, frames], [1.04, 1.14], {extrapolateRight: 'clamp'});
	const drift = interpolate(frame, [0, frames], [-1.5, 1.5], {extrapolateRight: 'clamp'});
	return (
		<AbsoluteFill style={{backgroundColor: 'black', overflow: 'hidden'}}>
			<AbsoluteFill style={{transform: `scale(${zoom}) translateX(${drift}%)`}}>
				<Img src={scene.imageUrl} style={{width: '100%', height: '100%', objectFit: 'cover'}} />
			</AbsoluteFill>
			{scene.audioUrl ? <Audio src={scene.audioUrl} /> : null}
			{scene.text?.trim() ? <SpokenLine text={scene.text} frames={frames} /> : null}
		</AbsoluteFill>
	);
};

/** Scenes back to back (hard cuts, as UGC clips do), each exactly its durationSeconds long. */
export const UgcVideo: React.FC<UgcProps> = ({title, scenes}) => {
	const {fps} = useVideoConfig();
	let from = 0;
	return (
		<AbsoluteFill style={{backgroundColor: 'black'}}>
			{scenes.map((scene, i) => {
				const frames = Math.max(1, Math.round(scene.durationSeconds * fps));
				const start = from;
				from += frames;
				return (
					<Sequence key={i} from={start} durationInFrames={frames} name={`Scene ${i + 1}`}>
						<Scene scene={scene} frames={frames} />
						{i === 0 && title ? <Hook title={title} /> : null}
					</Sequence>
				);
			})}
		</AbsoluteFill>
	);
};
