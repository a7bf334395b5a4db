import React from 'react';
import {
	AbsoluteFill,
	Audio,
	Img,
	Sequence,
	interpolate,
	useCurrentFrame,
	useVideoConfig,
} from 'remotion';
import {secondsToFrames} from './props.js';

export type TextLayout = {
	zone: 'top' | 'center' | 'bottom';
	align: 'left' | 'center' | 'right';
	maxWidthPercent: number;
};

export type Scene = {
	imageUrl: string;
	/** Narration played from the scene's start, cut at its end (the crossfade is silent). */
	audioUrl?: string;
	text?: string;
	durationSeconds: number;
	layout?: TextLayout;
};

export type SlideshowProps = {
	width?: number;
	height?: number;
	fps?: number;
	title?: string;
	scenes: Scene[];
};

const DEFAULT_LAYOUT: TextLayout = {zone: 'bottom', align: 'center', maxWidthPercent: 80};
const CROSSFADE_SECONDS = 0.5;

/**
 * Where each scene sits on the timeline. Scene i starts at the sum of the earlier
 * scenes' lengths, so the video lasts exactly the sum of durationSeconds; every
 * scene but the last stays on screen `fade` frames longer, under the next scene,
 * which fades in over it (the crossfade).
 */
export const slideshowTimeline = (scenes: Scene[], fps: number) => {
	const lengths = scenes.map((s) => secondsToFrames(s.durationSeconds, fps));
	const shortest = Math.min(...lengths);
	const fade = Math.max(0, Math.min(Math.round(CROSSFADE_SECONDS * fps), Math.floor(shortest / 2)));
	let start = 0;
	const placed = lengths.map((length, i) => {
		const from = start;
		start += length;
		const isLast = i === lengths.length - 1;
		return {from, length, visibleFor: length + (isLast ? 0 : fade)};
	});
	return {placed, fade, totalFrames: start};
};

const justify = {top: 'flex-start', center: 'center', bottom: 'flex-end'} as const;
const alignItems = {left: 'flex-start', center: 'center', right: 'flex-end'} as const;

const Caption: React.FC<{
	text: string;
	layout: TextLayout;
	delay: number;
	big?: boolean;
	/** When given, the caption fades out over its last 0.3 s. */
	fadeOutAt?: number;
}> = ({text, layout, delay, big, fadeOutAt}) => {
	const frame = useCurrentFrame();
	const {height, fps} = useVideoConfig();
	const fadeIn = interpolate(frame - delay, [0, Math.round(0.4 * fps)], [0, 1], {
		extrapolateLeft: 'clamp',
		extrapolateRight: 'clamp',
	});
	const fadeOutFrames = Math.max(1, Math.round(0.3 * fps));
	const fadeOut =
		fadeOutAt === undefined
			? 1
			: interpolate(frame, [fadeOutAt - fadeOutFrames, fadeOutAt], [1, 0], {
					extrapolateLeft: 'clamp',
					extrapolateRight: 'clamp',
				});
	const appear = Math.min(fadeIn, fadeOut);
	const fontSize = Math.round(height * (big ? 0.075 : 0.05));
	const margin = Math.round(height * 0.07);
	return (
		<AbsoluteFill
			style={{
				justifyContent: justify[layout.zone],
				alignItems: alignItems[layout.align],
				padding: margin,
			}}
		>
			<div
				style={{
					maxWidth: `${layout.maxWidthPercent}%`,
					opacity: appear,
					transform: `translateY(${(1 - appear) * fontSize * 0.6}px)`,
					backgroundColor: 'rgba(0, 0, 0, 0.55)',
					borderRadius: Math.round(fontSize * 0.35),
					padding: `${Math.round(fontSize * 0.45)}px ${Math.round(fontSize * 0.7)}px`,
					color: 'white',
					fontFamily: '"DejaVu Sans", "Liberation Sans", Arial, Helvetica, sans-serif',
					fontWeight: big ? 800 : 600,
					fontSize,
					lineHeight: 1.25,
					textAlign: layout.align,
					textShadow: '0 2px 6px rgba(0, 0, 0, 0.85)',
					whiteSpace: 'pre-wrap',
					overflowWrap: 'break-word',
				}}
			>
				{text}
			</div>
		</AbsoluteFill>
	);
};

const ORIGINS = ['50% 50%', '30% 35%', '70% 40%', '40% 70%', '65% 65%'];

const SceneView: React.FC<{scene: Scene; index: number; visibleFor: number; fadeIn: number}> = ({
	scene,
	index,
	visibleFor,
	fadeIn,
}) => {
	const frame = useCurrentFrame();
	// Gentle Ken Burns: zoom in on even scenes, out on odd ones, around varying points.
	const zoom = interpolate(frame, [0, Math.max(1, visibleFor)], index % 2 === 0 ? [1, 1.08] : [1.08, 1], {
		extrapolateLeft: 'clamp',
		extrapolateRight: 'clamp',
	});
	const opacity =
		fadeIn > 0
			? interpolate(frame, [0, fadeIn], [0, 1], {extrapolateLeft: 'clamp', extrapolateRight: 'clamp'})
			: 1;
	return (
		<AbsoluteFill style={{opacity, backgroundColor: 'black', overflow: 'hidden'}}>
			<AbsoluteFill style={{transform: `scale(${zoom})`, transformOrigin: ORIGINS[index % ORIGINS.length]}}>
				<Img
					src={scene.imageUrl}
					style={{width: '100%', height: '100%', objectFit: 'cover'}}
				/>
			</AbsoluteFill>
			{scene.text ? (
				<Caption text={scene.text} layout={scene.layout ?? DEFAULT_LAYOUT} delay={fadeIn} />
			) : null}
		</AbsoluteFill>
	);
};

export const Slideshow: React.FC<SlideshowProps> = ({title, scenes}) => {
	const {fps} = useVideoConfig();
	const {placed, fade} = slideshowTimeline(scenes, fps);
	const firstZone = scenes[0]?.layout?.zone ?? DEFAULT_LAYOUT.zone;
	const titleLayout: TextLayout = {
		zone: firstZone === 'top' ? 'center' : 'top',
		align: 'center',
		maxWidthPercent: 90,
	};
	return (
		<AbsoluteFill style={{backgroundColor: 'black'}}>
			{scenes.map((scene, i) => (
				<Sequence
					key={i}
					from={placed[i].from}
					durationInFrames={placed[i].visibleFor}
					name={`Scene ${i + 1}`}
				>
					<SceneView scene={scene} index={i} visibleFor={placed[i].visibleFor} fadeIn={i === 0 ? 0 : fade} />
				</Sequence>
			))}
			{scenes.map((scene, i) =>
				scene.audioUrl ? (
					<Sequence key={`audio-${i}`} from={placed[i].from} durationInFrames={placed[i].length} name={`Narration ${i + 1}`}>
						<Audio src={scene.audioUrl} />
					</Sequence>
				) : null,
			)}
			{title ? (
				<Sequence from={0} durationInFrames={placed[0].length} name="Title">
					<Caption text={title} layout={titleLayout} delay={0} big fadeOutAt={placed[0].length} />
				</Sequence>
			) : null}
		</AbsoluteFill>
	);
};
