import React from 'react';
import {AbsoluteFill, Img, Sequence, interpolate, useCurrentFrame, useVideoConfig} from 'remotion';

/** Where a vision model placed the caption on its image (analyze-image-layout). */
export type Placement = {zone: 'top' | 'center' | 'bottom'; align: 'left' | 'center' | 'right'; maxWidthPercent: number};

export type ExplainerScene = {imageUrl: string; text: string; durationSeconds: number; layout: Placement};

export type ExplainerProps = {width: number; height: number; fps: number; title: string; scenes: ExplainerScene[]};

const fail = (field: string, problem: string): never => {
	throw new Error(`Invalid input props for Explainer: ${field} ${problem}`);
};

const ZONES = ['top', 'center', 'bottom'];
const ALIGNS = ['left', 'center', 'right'];

/** The props checked and normalised: what a render of this template may be asked for. */
export const checkProps = (props: Partial<ExplainerProps>): ExplainerProps => {
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
		if (typeof s.text !== 'string') fail(`scenes[${i}].text`, 'must be a string');
		if (!(s.durationSeconds > 0 && s.durationSeconds <= 600)) fail(`scenes[${i}].durationSeconds`, 'must be above 0 and at most 600');
		const l = s.layout ?? {zone: 'bottom', align: 'center', maxWidthPercent: 80};
		if (!ZONES.includes(l.zone)) fail(`scenes[${i}].layout.zone`, `must be one of ${ZONES.join(', ')}`);
		if (!ALIGNS.includes(l.align)) fail(`scenes[${i}].layout.align`, `must be one of ${ALIGNS.join(', ')}`);
		const width = Math.min(100, Math.max(20, Number(l.maxWidthPercent) || 80));
		return {imageUrl: s.imageUrl, text: s.text, durationSeconds: s.durationSeconds, layout: {...l, maxWidthPercent: width}};
	});
	return {width: size('width', 1280), height: size('height', 720), fps, title: String(props.title ?? ''), scenes};
};

const justify = {top: 'flex-start', center: 'center', bottom: 'flex-end'} as const;
const textAlign = {left: 'flex-start', center: 'center', right: 'flex-end'} as const;

/** A caption card where the vision model said it fits, sliding in from its side. */
const Card: React.FC<{text: string; layout: Placement}> = ({text, layout}) => {
	const frame = useCurrentFrame();
	const {fps, height} = useVideoConfig();
	const enter = interpolate(frame, [0, Math.round(0.5 * fps)], [0, 1], {extrapolateRight: 'clamp'});
	const from = layout.align === 'right' ? 1 : -1;
	return (
		<AbsoluteFill style={{justifyContent: justify[layout.zone], alignItems: textAlign[layout.align], padding: Math.round(height * 0.08)}}>
			<div
				style={{
					maxWidth: `${layout.maxWidthPercent}%`,
					opacity: enter,
					transform: `translateX(${(1 - enter) * from * 40}px)`,
					borderLeft: `${Math.round(height * 0.008)}px solid #4cc9f0`,
					backgroundColor: 'rgba(10, 20, 35, 0.78)',
					padding: `${Math.round(height * 0.02)}px ${Math.round(height * 0.03)}px`,
					color: 'white',
					fontFamily: '"DejaVu Serif", "Liberation Serif", Georgia, serif',
					fontSize: Math.round(height * 0.045),
					lineHeight: 1.3,
					textAlign: layout.align,
				}}
			>
				{text}
			</div>
		</AbsoluteFill>
	);
};

/** The topic as a lower strip over the whole video, with how far through the findings we are. */
const Strip: React.FC<{title: string; total: number}> = ({title, total}) => {
	const frame = useCurrentFrame();
	const {height} = useVideoConfig();
	return (
		<AbsoluteFill style={{justifyContent: 'flex-end'}}>
			<div
				style={{
					display: 'flex',
					justifyContent: 'space-between',
					padding: `${Math.round(height * 0.012)}px ${Math.round(height * 0.03)}px`,
					backgroundColor: 'rgba(0, 0, 0, 0.6)',
					color: '#d8e2ec',
					fontFamily: '"DejaVu Sans", "Liberation Sans", Arial, sans-serif',
					fontSize: Math.round(height * 0.026),
				}}
			>
				<span>Research · {title}</span>
			</div>
			<div style={{height: Math.max(2, Math.round(height * 0.006)), width: `${(100 * frame) / Math.max(1, total)}%`, backgroundColor: '#4cc9f0'}} />
		</AbsoluteFill>
	);
};

/** One finding per scene: its image, its caption where it fits; the topic strip throughout. */
export const Explainer: React.FC<ExplainerProps> = ({title, scenes}) => {
	const {fps, durationInFrames} = useVideoConfig();
	let from = 0;
	return (
		<AbsoluteFill style={{backgroundColor: '#0a1423'}}>
			{scenes.map((scene, i) => {
				const frames = Math.max(1, Math.round(scene.durationSeconds * fps));
				const start = from;
				from += frames;
				return (
					<Sequence key={i} from={start} durationInFrames={frames} name={`Finding ${i + 1}`}>
						<AbsoluteFill>
							<Img src={scene.imageUrl} style={{width: '100%', height: '100%', objectFit: 'cover'}} />
						</AbsoluteFill>
						{scene.text.trim() ? <Card text={scene.text} layout={scene.layout} /> : null}
					</Sequence>
				);
			})}
			{title ? <Strip title={title} total={durationInFrames} /> : null}
		</AbsoluteFill>
	);
};
