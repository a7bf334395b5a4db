import React from 'react';
import {AbsoluteFill, interpolate, spring, useCurrentFrame, useVideoConfig} from 'remotion';

export type TitleCardProps = {
	width?: number;
	height?: number;
	fps?: number;
	text: string;
	subtitle?: string;
	color?: string;
	durationSeconds: number;
};

const DEFAULT_COLOR = '#1e3a8a';

export const TitleCard: React.FC<TitleCardProps> = ({text, subtitle, color}) => {
	const frame = useCurrentFrame();
	const {fps, width, height, durationInFrames} = useVideoConfig();
	const unit = Math.min(width, height);

	const enter = spring({frame, fps, config: {damping: 14, mass: 0.8}});
	const subEnter = spring({frame: frame - Math.round(0.35 * fps), fps, config: {damping: 200}});
	const fadeOutFrames = Math.max(1, Math.min(Math.round(0.5 * fps), Math.floor(durationInFrames * 0.2)));
	const exit = interpolate(frame, [durationInFrames - fadeOutFrames, durationInFrames - 1], [1, 0], {
		extrapolateLeft: 'clamp',
		extrapolateRight: 'clamp',
	});
	// The light spot drifts slowly across the background.
	const drift = interpolate(frame, [0, Math.max(1, durationInFrames - 1)], [25, 75]);

	return (
		<AbsoluteFill style={{backgroundColor: color ?? DEFAULT_COLOR}}>
			<AbsoluteFill
				style={{
					background: `radial-gradient(circle at ${drift}% 30%, rgba(255,255,255,0.22), rgba(255,255,255,0) 55%), linear-gradient(160deg, rgba(0,0,0,0) 20%, rgba(0,0,0,0.55) 100%)`,
				}}
			/>
			<AbsoluteFill
				style={{
					justifyContent: 'center',
					alignItems: 'center',
					padding: Math.round(unit * 0.08),
					opacity: exit,
					fontFamily: '"DejaVu Sans", "Liberation Sans", Arial, Helvetica, sans-serif',
					color: 'white',
					textAlign: 'center',
				}}
			>
				<div
					style={{
						maxWidth: '85%',
						fontSize: Math.round(unit * 0.1),
						fontWeight: 800,
						lineHeight: 1.15,
						opacity: Math.min(1, enter * 1.5),
						transform: `translateY(${(1 - enter) * unit * 0.08}px) scale(${0.85 + 0.15 * enter})`,
						textShadow: '0 4px 16px rgba(0,0,0,0.45)',
						whiteSpace: 'pre-wrap',
						overflowWrap: 'break-word',
					}}
				>
					{text}
				</div>
				{subtitle ? (
					<div
						style={{
							marginTop: Math.round(unit * 0.04),
							maxWidth: '80%',
							fontSize: Math.round(unit * 0.045),
							fontWeight: 500,
							lineHeight: 1.3,
							opacity: subEnter * 0.92,
							transform: `translateY(${(1 - subEnter) * unit * 0.03}px)`,
							textShadow: '0 2px 8px rgba(0,0,0,0.5)',
							whiteSpace: 'pre-wrap',
							overflowWrap: 'break-word',
						}}
					>
						{subtitle}
					</div>
				) : null}
			</AbsoluteFill>
		</AbsoluteFill>
	);
};
