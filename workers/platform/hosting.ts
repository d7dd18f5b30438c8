import { ordersExample } from "../examples/orders";
import type { HostedExample } from "./hosted-example";

/** The applications the platform Worker hosts (see HostedExample): the one place that names them. */
export const hostedExamples: readonly HostedExample[] = [ordersExample];
